// SPDX-License-Identifier: Apache-2.0

package kmod

// DefaultModules is the set mkinitrd includes unless told otherwise: enough
// to find a disk on virtio, NVMe, SATA/AHCI and SCSI, everything keel
// mounts (squashfs, overlay, dm-verity, dm-crypt, btrfs, ext4), efivarfs
// (LoaderDevicePartUUID), and the hardware watchdog drivers of
// WatchdogModules. Names this kernel does not
// have (built in, or not built at all) are skipped.
//
// USB storage is not in it: an A/B system disk is an internal one, and the
// USB stack (usbcore, xhci, ehci, usb-storage, uas: 0.52 MB of a 4.6 MB
// image) is what kept the generic image above 4 MiB. A root on a USB disk
// takes `--modules xhci_pci,ehci_pci,usb_storage,uas`.
func DefaultModules() []string {
	return append([]string{
		// buses and disks
		"virtio_pci", "virtio_blk", "virtio_scsi",
		"nvme",
		"ahci", "sd_mod",
		"scsi_mod",
		// file systems and device mapper
		"squashfs", "overlay",
		"dm_mod", "dm_verity", "dm_crypt",
		"btrfs", "ext4",
		// UEFI: the firmware's boot partition (LoaderDevicePartUUID)
		// chooses the system disk.
		"efivarfs",
		// LUKS: dm-crypt asks for these by name when a volume is opened.
		// aes and sha256 come with dm_crypt (see runtimeNeeds): as
		// modules when the kernel does not build them in, and as the
		// CPU's own implementations (aesni_intel, sha256_ssse3) when it
		// does (accelerations).
		"xts", "ecb", "cbc",
	}, WatchdogModules()...)
}

// WatchdogModules are the hardware watchdog drivers of the default image,
// loaded only when rd.watchdog= asks for a watchdog: QEMU's i6300esb, the
// Intel chipset TCO (iTCO_wdt, instantiated by lpc_ich), the AMD chipset
// TCO and ACPI's WDAT table. softdog is not one of them: an image opts into
// it with mkinitrd --modules softdog (docs/boot-sequence.md, "Watchdog").
// The init loads them in this order until a watchdog appears.
func WatchdogModules() []string {
	return []string{"i6300esb", "lpc_ich", "iTCO_wdt", "sp5100_tco", "wdat_wdt"}
}
