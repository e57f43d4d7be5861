// SPDX-License-Identifier: Apache-2.0

package main

import (
	"github.com/keel-boot/keel/bootstate"
)

// The steps of a slot attempt, each with the class of its failures: only
// image faults retire a slot (docs/boot-sequence.md, "Failure classes",
// lists the same table; TestFailureClassesDocumented keeps them equal).
const (
	stepImageDevice = "image device"
	stepHashDevice  = "hash device"
	stepHeaderRead  = "header read"
	stepHeader      = "header"
	stepRollback    = "rollback floor"
	stepSlotSize    = "slot size"
	stepDM          = "dm-verity setup"
	stepImageRead   = "image read"
	stepRootHash    = "root hash"
	stepRootHashArg = "roothash= from the command line"
	stepFSModule    = "file system module"
	stepMountImage  = "image mount"
	stepOverlay     = "overlay"
	stepInit        = "init"
	stepInitArg     = "init= from the command line"
	stepAPIMounts   = "API mount points"
)

// failureClass is one row of the table.
type failureClass struct {
	step  string
	class bootstate.Class
	what  string
}

var failureClasses = []failureClass{
	{stepImageDevice, bootstate.Environment, "the slot's image partition did not appear within rd.timeout"},
	{stepHashDevice, bootstate.Environment, "the slot's verity partition did not appear within rd.timeout"},
	{stepHeaderRead, bootstate.Environment, "the verity partition cannot be read (an I/O error: the device, not the image)"},
	{stepHeader, bootstate.Image, "the slot header is corrupt, unsigned, signed by an untrusted key, or asks for blocks larger than the page size"},
	{stepRollback, bootstate.Image, "the image's rollback index is below the machine's floor (locked)"},
	{stepSlotSize, bootstate.Environment, "the slot's partitions are smaller than its header says (a partition table changed under the slot, or a disk that reports less than it holds)"},
	{stepDM, bootstate.Environment, "a device-mapper ioctl or node failed"},
	{stepImageRead, bootstate.Environment, "an EIO reading the image (dm-verity's first read, the mount, the lookup of the init) and the slot's partitions fail when read directly too (an I/O error: the device, not the image); or dm-verity's first read fails twice while the same blocks, read directly, match the root hash"},
	{stepRootHash, bootstate.Image, "the hash tree does not match the signed (or baked) root hash"},
	{stepRootHashArg, bootstate.Environment, "the hash tree does not match a roothash= typed on the command line (a command-line mistake)"},
	{stepFSModule, bootstate.Environment, "the kernel does not know the image's file system (module missing)"},
	{stepMountImage, bootstate.Image, "the verified image does not mount"},
	{stepOverlay, bootstate.Environment, "the overlay cannot be mounted"},
	{stepInit, bootstate.Image, "the image has no init (/sbin/init, or the one baked with mkinitrd --cmdline init=)"},
	{stepInitArg, bootstate.Environment, "an init= typed on the command line names no program in the image (a command-line mistake)"},
	{stepAPIMounts, bootstate.Image, "the image's own /dev, /proc, /sys or /run is a symlink that leads to no directory in it"},
}

// fault classifies err, a failure of step, by the table.
func fault(step string, err error) error {
	for _, f := range failureClasses {
		if f.step == step {
			return bootstate.Classify(f.class, step, err)
		}
	}
	return bootstate.Classify(bootstate.Environment, step, err)
}
