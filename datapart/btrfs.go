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
	// ioctlSnapCreate is BTRFS_IOC_SNAP_CREATE, _IOW(0x94, 1, struct
	// btrfs_ioctl_vol_args), laid out likewise.
	ioctlSnapCreate = 1<<30 | unsafe.Sizeof(btrfsVolArgs{})<<16 | btrfsIoctlMagic<<8 | 1
)

// CreateSubvolume creates the btrfs subvolume name in the directory parent
// with BTRFS_IOC_SUBVOL_CREATE, as `btrfs subvolume create` does.
func CreateSubvolume(parent, name string) error {
	return volIoctl("btrfs subvolume", parent, name, ioctlSubvolCreate, 0)
}

// Snapshot makes name in the directory parent a writable snapshot of the
// btrfs subvolume src with BTRFS_IOC_SNAP_CREATE, as `btrfs subvolume
// snapshot` does: one step whatever src holds; the two share their data
// until either is written, and a write to one never shows in the other.
func Snapshot(src, parent, name string) error {
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("btrfs snapshot %s of %s: %w", name, src, err)
	}
	defer unix.Close(fd)
	return volIoctl("btrfs snapshot of "+src, parent, name, ioctlSnapCreate, int64(fd))
}

// volIoctl runs a btrfs_ioctl_vol_args ioctl naming name in parent.
func volIoctl(what, parent, name string, req uintptr, fd int64) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > btrfsPathNameMax {
		return fmt.Errorf("%s name %q: expected one path component", what, name)
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%s %s: opening %s: %w", what, name, parent, err)
	}
	defer unix.Close(pfd)
	args := btrfsVolArgs{fd: fd}
	copy(args.name[:], name)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(pfd), req, uintptr(unsafe.Pointer(&args)))
	if errno == unix.ENOTTY {
		return fmt.Errorf("%s %s: %s is not on btrfs: %w", what, name, parent, errno)
	}
	if errno != 0 {
		return fmt.Errorf("%s %s in %s: %w", what, name, parent, errno)
	}
	return nil
}

// btrfsFirstFreeObjectID is BTRFS_FIRST_FREE_OBJECTID, the inode number of
// every subvolume's root directory.
const btrfsFirstFreeObjectID = 256

// IsSubvolume reports whether dir is the root of a btrfs subvolume (what
// Snapshot takes), false for any other directory or file system.
func IsSubvolume(dir string) (bool, error) {
	var fsst unix.Statfs_t
	if err := unix.Statfs(dir, &fsst); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, fmt.Errorf("lstat %s: %w", dir, err)
	}
	return fsst.Type == unix.BTRFS_SUPER_MAGIC && st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Ino == btrfsFirstFreeObjectID, nil
}
