// SPDX-License-Identifier: Apache-2.0

// Package vm is the harness of keel's end-to-end QEMU tests: it finds the
// test kernel, builds the test payload, disk images and root trees without
// root where possible, and runs QEMU with the serial console streamed into a
// buffer that tests assert on while the guest boots.
//
// A scenario is a short test:
//
//	func TestSomething(t *testing.T) {
//		vm.Short(t)
//		t.Parallel()
//		root := vm.MkSquashfs(t, vm.RootTree(t, vm.BuildPayload(t)))
//		disk := vm.NewDisk(t, "", []vm.Part{{Name: "root-a", SizeMiB: 16, Content: root}})
//		m := vm.Start(t, vm.Options{Initrd: initrd, Disks: []string{disk.Path}, Cmdline: "slot=a"})
//		r := m.ExpectReport() // the payload's lines, parsed (package report)
//		if !r.RootWritable {
//			t.Error("/ is read-only")
//		}
//		m.ExpectPowerOff()
//	}
//
// where initrd is keel's initramfs (mkinitrd) and the payload, keel's test
// init, prints what it finds in the root it was switched into.
//
// The guest is started with -no-reboot, so a guest reboot, a power-off and a
// kernel panic (panic=-1 reboots at once) all end QEMU; ExpectPowerOff and
// ExpectReboot tell them apart by the kernel's last message.
//
// Environment: KEEL_KERNEL (kernel image; default the newest /boot/vmlinuz-*),
// KEEL_KVM=1 (use KVM instead of TCG), KEEL_QEMU_TIMEOUT_SCALE (multiplies
// every timeout), KEEL_QEMU_JOBS (QEMU instances at once, default 2),
// KEEL_CACHE_DIR (kept between runs, default qemu-tests/.cache),
// KEEL_QEMU_BZIMAGE=1 (boot the kernel's bzImage through the firmware
// instead of its ELF through PVH, pvh.go). Console logs are written to
// qemu-tests/.cache/logs/<TestName>.log.
package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// DefaultTimeout is how long one expectation waits before the test fails,
// before KEEL_QEMU_TIMEOUT_SCALE. TCG is slow: a kernel alone takes ~7 s to
// reach /init.
const DefaultTimeout = 120 * time.Second

// defaultJobs is how many QEMU instances run at once: the test machines have
// two cores.
const defaultJobs = 2

// Short skips t under `go test -short`: QEMU scenarios take tens of seconds.
func Short(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("QEMU scenario: skipped with -short")
	}
}

// timeoutScale reads KEEL_QEMU_TIMEOUT_SCALE (default 1).
func timeoutScale() (float64, error) {
	v := os.Getenv("KEEL_QEMU_TIMEOUT_SCALE")
	if v == "" {
		return 1, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("KEEL_QEMU_TIMEOUT_SCALE=%q: want a positive number", v)
	}
	return f, nil
}

// scaled applies KEEL_QEMU_TIMEOUT_SCALE to d, or DefaultTimeout when d is 0.
func scaled(d time.Duration) (time.Duration, error) {
	if d == 0 {
		d = DefaultTimeout
	}
	f, err := timeoutScale()
	return time.Duration(float64(d) * f), err
}

// jobs reads KEEL_QEMU_JOBS (default 2).
func jobs() int {
	n, err := strconv.Atoi(os.Getenv("KEEL_QEMU_JOBS"))
	if err != nil || n < 1 {
		return defaultJobs
	}
	return n
}

// ModuleRoot returns the directory holding keel's go.mod, found upwards from
// the working directory (go test runs in the package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("module root: no go.mod in %s or above", dir)
		}
	}
}

// harnessDir returns qemu-tests/.cache/NAME in the module, created.
func harnessDir(name string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "qemu-tests", ".cache", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	return dir, nil
}

// CacheDir returns $KEEL_CACHE_DIR, else qemu-tests/.cache: what is kept
// between test runs (the Debian root tarball).
func CacheDir() (string, error) {
	if d := os.Getenv("KEEL_CACHE_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("KEEL_CACHE_DIR: %w", err)
		}
		return filepath.Abs(d)
	}
	return harnessDir("")
}

// needTool skips t when a program the harness runs is not installed.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := lookPath(name)
	if err != nil {
		t.Skipf("%s not found (Debian package %s): %v", name, pkg, err)
	}
	return p
}

// lookPath is exec.LookPath that also searches the sbin directories, which a
// non-root PATH lacks (sfdisk, mkfs.ext4).
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("not in $PATH, /usr/sbin or /sbin")
}
