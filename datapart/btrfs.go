// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// btrfsVolArgs is struct btrfs_ioctl_vol_args from linux/btrfs.h.
type btrfsVolArgs struct {
	fd   int64
	name [btrfsPathNameMax + 1]byte
}

const (
	btrfsIoctlMagic  = 0x94
	btrfsPathNameMax = 4087

	// ioctlSubvolCreate is BTRFS_IOC_SUBVOL_CREATE, _IOW(0x94, 14, struct
	// btrfs_ioctl_vol_args). golang.org/x/sys/unix has no btrfs ioctls. The
	// value uses the generic _IOC layout (x86, arm, arm64, riscv, s390);
	// powerpc, mips and sparc encode directions differently.
	ioctlSubvolCreate = 1<<30 | unsafe.Sizeof(btrfsVolArgs{})<<16 | btrfsIoctlMagic<<8 | 14
)

// CreateSubvolume creates the btrfs subvolume name in the directory parent
// with BTRFS_IOC_SUBVOL_CREATE, as `btrfs subvolume create` does.
func CreateSubvolume(parent, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > btrfsPathNameMax {
		return fmt.Errorf("btrfs subvolume name %q: expected one path component", name)
	}
	fd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("btrfs subvolume %s: opening %s: %w", name, parent, err)
	}
	defer unix.Close(fd)
	var args btrfsVolArgs
	copy(args.name[:], name)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlSubvolCreate, uintptr(unsafe.Pointer(&args)))
	if errno == unix.ENOTTY {
		return fmt.Errorf("btrfs subvolume %s: %s is not on btrfs: %w", name, parent, errno)
	}
	if errno != 0 {
		return fmt.Errorf("btrfs subvolume %s in %s: %w", name, parent, errno)
	}
	return nil
}
