// SPDX-License-Identifier: Apache-2.0

// Package dm is keel's one way to the kernel's device-mapper: the device
// names the kernel accepts, the UUIDs cryptsetup gives its devices, the
// /dev/mapper nodes keel makes itself (there is no udev in the initramfs),
// and creating, reloading and removing devices through
// github.com/anatol/devmapper.go. It knows no target: verity builds the
// dm-verity tables and unlock the dm-crypt ones.
package dm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultDir is where keel makes device nodes, as udev would.
const DefaultDir = "/dev/mapper"

// CheckName rejects names the kernel refuses (DM_NAME_LEN) or that would
// escape the node directory.
func CheckName(name string) error {
	if name == "" || len(name) >= unix.DM_NAME_LEN || strings.ContainsAny(name, "/ \t\n") || name == "." || name == ".." {
		return fmt.Errorf("device name %q must be 1-%d characters without '/' or white space", name, unix.DM_NAME_LEN-1)
	}
	return nil
}

// UUID is the device-mapper UUID cryptsetup gives its devices, which udev
// rules outside the initramfs recognise: CRYPT-<kind>-<id>-<name>, cut to
// what the kernel takes (DM_UUID_LEN).
func UUID(kind, id, name string) string {
	u := "CRYPT-" + kind + "-" + id + "-" + name
	return u[:min(len(u), unix.DM_UUID_LEN-1)]
}

// Dir is a directory of device nodes; "" means DefaultDir.
type Dir string

// Path is the node of device name in d.
func (d Dir) Path(name string) string {
	if d == "" {
		d = DefaultDir
	}
	return filepath.Join(string(d), name)
}

// MakeNode makes the block device node of device name for devno, or accepts
// a node already there if it is the same device (udev may run outside the
// initramfs). It returns the node's path.
func (d Dir) MakeNode(name string, devno uint64) (string, error) {
	path := d.Path(name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	err := unix.Mknod(path, unix.S_IFBLK|0o600, int(devno))
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Stat(path, &st); err == nil && (st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != devno) {
			err = fmt.Errorf("%s exists and is not block device %d:%d", path, unix.Major(devno), unix.Minor(devno))
		}
	}
	if err != nil {
		return "", fmt.Errorf("making node %s for %d:%d: %w", path, unix.Major(devno), unix.Minor(devno), err)
	}
	return path, nil
}

// RemoveNode removes the node of device name; a missing node is no error.
func (d Dir) RemoveNode(name string) error {
	if err := os.Remove(d.Path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing node: %w", err)
	}
	return nil
}
