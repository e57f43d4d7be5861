package devices

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// BlockNode makes the block device node path for devno, as udev would (there
// is no udev in the initramfs), or accepts a node already there if it is the
// same device (udev may run outside the initramfs).
func BlockNode(path string, devno uint64) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	err := unix.Mknod(path, unix.S_IFBLK|0o600, int(devno))
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err = unix.Stat(path, &st); err == nil && (st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != devno) {
			err = fmt.Errorf("%s exists and is not block device %d:%d", path, unix.Major(devno), unix.Minor(devno))
		}
	}
	if err != nil {
		return fmt.Errorf("making node %s for %d:%d: %w", path, unix.Major(devno), unix.Minor(devno), err)
	}
	return nil
}
