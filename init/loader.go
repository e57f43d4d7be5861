// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/efivar"
)

// efivarfsModule is the module of efivarfs (Debian builds it as one).
const efivarfsModule = "efivarfs"

// Where a UEFI boot's firmware interface and efivarfs are (variables for
// tests).
var (
	efiSysfs   = "/sys/firmware/efi"
	efivarsDir = efivar.Dir
)

// loaderPart is LoaderDevicePartUUID, read once.
type loaderPart struct {
	read bool
	uuid string
}

// loaderPartUUID is the EFI LoaderDevicePartUUID of a UEFI boot: the
// PARTUUID of the partition systemd-boot or systemd-stub was loaded from,
// which the firmware chose (its boot order, or the boot entry the operator
// picked). The system disk is the disk holding it (docs/boot-sequence.md,
// "The system disk"). "" on a BIOS boot, with a boot loader that does not
// set it, or when it cannot be read (said loudly: the choice then falls to
// the partition labels alone, as before keel read it). efivarfs is mounted
// where systemd expects it, and left mounted for it.
func (b *boot) loaderPartUUID() string {
	if b.sys.loader.read {
		return b.sys.loader.uuid
	}
	b.sys.loader.read = true
	if _, err := os.Stat(efiSysfs); err != nil {
		return "" // not a UEFI boot
	}
	v, err := b.readLoaderPart()
	if err != nil {
		b.warnLoud("EFI variable LoaderDevicePartUUID: %v: the system disk is chosen by its partition labels alone", err)
		return ""
	}
	if v != "" {
		b.log.Infof("the firmware loaded the kernel from the partition PARTUUID=%s (LoaderDevicePartUUID): the system disk is the disk holding it", v)
		b.rep.LoaderPartUUID = v
	}
	b.sys.loader.uuid = v
	return v
}

func (b *boot) readLoaderPart() (string, error) {
	if err := mountEfivarfs(b); err != nil {
		return "", err
	}
	return efivar.ReadLoaderDevicePartUUID(efivarsDir)
}

// mountEfivarfs mounts efivarfs at efivarsDir unless it is there already
// (a variable for tests).
var mountEfivarfs = (*boot).mountEfivarfs

// mountEfivarfs mounts efivarfs at efivarsDir unless it is there already,
// with systemd's flags (nosuid, nodev, noexec, read-write: bootctl writes
// variables), loading its module first.
func (b *boot) mountEfivarfs() error {
	var st unix.Statfs_t
	if err := unix.Statfs(efivarsDir, &st); err == nil && uint32(st.Type) == unix.EFIVARFS_MAGIC {
		return nil
	}
	if b.mods != nil && b.baked != nil {
		b.need(efivarfsModule)
	}
	err := unix.Mount("efivarfs", efivarsDir, "efivarfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mounting efivarfs on %s: %w", efivarsDir, err)
	}
	return nil
}
