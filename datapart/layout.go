// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"github.com/keel-boot/keel/mounts"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Sys is the syscall seam of EnsureLayout: the kernel in the init, a temp
// directory with a fake subvolume call in tests. Nil fields are the kernel.
type Sys struct {
	Lstat func(path string) (os.FileInfo, error)
	Mkdir func(path string, perm os.FileMode) error
	Chmod func(path string, perm os.FileMode) error
	// CreateSubvolume creates the btrfs subvolume name in the directory parent.
	CreateSubvolume func(parent, name string) error
	Statfs          func(path string, buf *unix.Statfs_t) error
}

// Kernel is the Sys that calls the kernel.
func Kernel() Sys {
	return Sys{Lstat: os.Lstat, Mkdir: os.Mkdir, Chmod: os.Chmod, CreateSubvolume: CreateSubvolume, Statfs: unix.Statfs}
}

func (s Sys) withDefaults() Sys {
	k := Kernel()
	if s.Lstat == nil {
		s.Lstat = k.Lstat
	}
	if s.Mkdir == nil {
		s.Mkdir = k.Mkdir
	}
	if s.Chmod == nil {
		s.Chmod = k.Chmod
	}
	if s.CreateSubvolume == nil {
		s.CreateSubvolume = k.CreateSubvolume
	}
	if s.Statfs == nil {
		s.Statfs = k.Statfs
	}
	return s
}

// Filesystems the data partition may hold.
const (
	Btrfs = "btrfs"
	Ext4  = "ext4"
)

// layout is the top level of the data filesystem and each entry's mode:
// @overlay is private because uppers hold the root's changes, /etc/shadow
// included.
var layout = [...]struct {
	name string
	perm os.FileMode
}{{Var, 0o755}, {Home, 0o755}, {Overlay, 0o700}}

// EnsureLayout makes sure the data filesystem mounted at root has @var,
// @home and @overlay: subvolumes on btrfs, directories on ext4. It returns
// the paths it created. An existing directory or subvolume is used as it
// is (an @overlay open to group or others is made private again); an
// existing entry of another kind (a file, a symlink) is an error and
// is left alone.
func EnsureLayout(root, fstype string, sys Sys) (created []string, err error) {
	sys = sys.withDefaults()
	if fstype != Btrfs && fstype != Ext4 {
		return nil, fmt.Errorf("data partition at %s: filesystem %q, expected %s or %s", root, fstype, Btrfs, Ext4)
	}
	if fi, err := sys.Lstat(root); err != nil {
		return nil, fmt.Errorf("data partition at %s: %w", root, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("data partition at %s: is a %s, expected a directory", root, Kind(fi.Mode()))
	}
	for _, e := range layout {
		made, err := ensure(sys, root, fstype, e.name, e.perm)
		if err != nil {
			return created, err
		}
		if made != "" {
			created = append(created, made)
		}
	}
	return created, nil
}

// ensure creates root/name when missing and returns its path if it did.
func ensure(sys Sys, root, fstype, name string, perm os.FileMode) (string, error) {
	path := filepath.Join(root, name)
	fi, err := sys.Lstat(path)
	switch {
	case err == nil && fi.IsDir() && perm&0o077 == 0 && fi.Mode().Perm()&0o077 != 0:
		// A private entry (@overlay) left open: a power cut between its
		// creation (subvolumes are born 0755) and the chmod below. Closed
		// again, never opened: the operator's modes of @var and @home stay.
		if err := sys.Chmod(path, perm); err != nil {
			return "", fmt.Errorf("data partition: %w", err)
		}
		return "", nil
	case err == nil && fi.IsDir():
		return "", nil
	case err == nil:
		return "", fmt.Errorf("data partition: %s is a %s, expected a directory or subvolume (left untouched)", path, Kind(fi.Mode()))
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("data partition: %w", err)
	}
	if fstype == Btrfs {
		err = sys.CreateSubvolume(root, name)
	} else {
		err = sys.Mkdir(path, perm)
	}
	if err != nil {
		return "", fmt.Errorf("data partition: creating %s: %w", path, err)
	}
	// Subvolumes are born 0755 and mkdir is subject to the umask: set the
	// mode explicitly so the layout is the same on every machine.
	if err := sys.Chmod(path, perm); err != nil {
		return "", fmt.Errorf("data partition: %w", err)
	}
	return path, nil
}

// Kind names a file type for messages (mounts.Kind).
func Kind(m fs.FileMode) string { return mounts.Kind(m) }
