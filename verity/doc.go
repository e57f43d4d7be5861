// SPDX-License-Identifier: Apache-2.0

// Package verity knows dm-verity: the hash tree and superblock that
// `veritysetup format` writes (format version 1), verification of a data
// device against them, and the device-mapper table that opens a verity
// device. It knows nothing about slots or mounts.
//
// The on-disk layout follows cryptsetup's lib/verity: a 512-byte superblock
// padded to one hash block, then the tree levels with the top level first,
// each digest salted as hash(salt || block) and padded to a power of two.
// See https://gitlab.com/cryptsetup/cryptsetup/-/wikis/DMVerity and
// https://docs.kernel.org/admin-guide/device-mapper/verity.html.
package verity
