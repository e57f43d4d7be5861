// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Size returns the size in bytes of a block device (BLKGETSIZE64), or of a
// regular file, which stands in for a device in tests and image builds.
func Size(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", path, err)
	}
	if st.Mode().IsRegular() {
		return st.Size(), nil
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return 0, fmt.Errorf("size of %s: mode %v, want a block device or a regular file", path, st.Mode())
	}
	return blockSize(f)
}

func blockSize(f *os.File) (int64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	var size uint64
	var errno unix.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return 0, fmt.Errorf("size of %s: BLKGETSIZE64: %w", f.Name(), err)
	}
	return int64(size), nil
}
