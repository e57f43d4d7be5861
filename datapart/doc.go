// SPDX-License-Identifier: Apache-2.0

// Package datapart prepares the persistent data partition: it recognises
// its filesystem, creates the @var, @home and @overlay subvolumes (btrfs,
// through the kernel ioctl: there is no btrfs-progs in the initramfs) or
// directories (ext4), names the per-slot, per-image overlay upper
// directories, prunes the uppers of images that are gone, seeds @var from
// the image's /var once, and describes the bind mounts of /var and /home.
//
// The one rule every function here keeps: nothing on the data partition is
// ever deleted except upper directories of images no longer in their slot.
// docs/data.md describes the layout and what survives what.
package datapart
