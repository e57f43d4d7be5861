// SPDX-License-Identifier: Apache-2.0

// Package looptest attaches files to loop devices for tests of code that
// needs a block device (device-mapper tables, node making). It uses the
// loop ioctls directly, so it works in a VM that has no losetup.
package looptest

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Free is the path of a loop device nobody uses; it skips t when there are
// no loop devices (no /dev/loop-control: the loop module is not loaded).
func Free(t testing.TB) string {
	t.Helper()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no loop devices: %v", err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		t.Skipf("no free loop device: %v", err)
	}
	return fmt.Sprintf("/dev/loop%d", n)
}

// Attach attaches file to a free loop device, read-only or read-write, and
// detaches it when the test ends. It returns the loop device's path.
func Attach(t testing.TB, file string, readOnly bool) string {
	t.Helper()
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	path := Free(t)
	lf, err := os.OpenFile(path, flag, 0)
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	f, err := os.OpenFile(file, flag, 0)
	if err != nil {
		lf.Close()
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_SET_FD, int(f.Fd())); err != nil {
		lf.Close()
		t.Skipf("attaching %s to %s: %v", file, path, err)
	}
	t.Cleanup(func() {
		_ = unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_CLR_FD, 0)
		lf.Close()
	})
	return path
}
