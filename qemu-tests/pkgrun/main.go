// SPDX-License-Identifier: Apache-2.0

// Command pkgrun is the /init of the VM that runs keel's privileged package
// tests against a real kernel (qemu-tests' TestPackageTestsInVM): it mounts
// /proc, /sys, /dev and /tmp, loads the modules mkinitrd baked in, runs
// every /pkgs/NAME/NAME.test with the arguments in /pkgs/NAME/args (one a
// line) from /pkgs/NAME, prints "KEEL-PKGTEST: NAME exit N" for each and
// "KEEL-PKGTEST: done", and powers off. A package whose tests need a real
// file system (make bench's /etc merge under TCG) names one in
// /pkgs/NAME/scratch, "DEVICE FSTYPE": it is mounted on /scratch/NAME and
// is the tests' TMPDIR instead of /tmp. It never exits: PID 1 must not.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/kmod"
)

// Prefix starts every line the scenario reads.
const Prefix = "KEEL-PKGTEST: "

func main() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Printf("%spanic: %v\n", Prefix, r)
		}
		unix.Sync()
		err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		fmt.Printf("%spower off: %v\n", Prefix, err)
		for {
			time.Sleep(time.Hour)
		}
	}()
	if err := setup(); err != nil {
		fmt.Printf("%ssetup: %v\n", Prefix, err)
		return
	}
	dirs, err := os.ReadDir("/pkgs")
	if err != nil {
		fmt.Printf("%s%v\n", Prefix, err)
		return
	}
	for _, d := range dirs {
		fmt.Printf("%s%s exit %d\n", Prefix, d.Name(), runTests(filepath.Join("/pkgs", d.Name())))
	}
	fmt.Printf("%sdone\n", Prefix)
}

// setup mounts the API file systems and loads the baked modules.
func setup() error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	b, err := os.ReadFile(bakedconf.Path)
	if err != nil {
		return err
	}
	cfg, err := bakedconf.Parse(b)
	if err != nil {
		return err
	}
	if errs := kmod.Load(cfg.Modules, "/", kmod.LoadFile); len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

// runTests runs dir's test binary with its arguments and returns its exit
// status (-1 when it could not run).
func runTests(dir string) int {
	name := filepath.Base(dir)
	args, err := os.ReadFile(filepath.Join(dir, "args"))
	if err != nil {
		fmt.Printf("%s%s: %v\n", Prefix, name, err)
		return -1
	}
	tmp, err := scratch(dir)
	if err != nil {
		fmt.Printf("%s%s: %v\n", Prefix, name, err)
		return -1
	}
	cmd := exec.Command(filepath.Join(dir, name+".test"), strings.Fields(string(args))...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stdout, os.Stdout
	cmd.Env = []string{"PATH=/bin", "TMPDIR=" + tmp, "HOME=/tmp"}
	err = cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Printf("%s%s: %v\n", Prefix, name, err)
		return -1
	}
	return 0
}

// scratch mounts the file system dir/scratch names ("DEVICE FSTYPE") on
// /scratch/NAME and returns it; without the file the tests get /tmp. The
// device may appear a moment after its driver was loaded.
func scratch(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "scratch"))
	if errors.Is(err, os.ErrNotExist) {
		return "/tmp", nil
	}
	f := strings.Fields(string(b))
	if err != nil || len(f) != 2 {
		return "", fmt.Errorf("%s/scratch: %q, %v: expected \"DEVICE FSTYPE\"", dir, b, err)
	}
	mnt := filepath.Join("/scratch", filepath.Base(dir))
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return "", err
	}
	for range 100 {
		if _, err = os.Stat(f[0]); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := unix.Mount(f[0], mnt, f[1], 0, ""); err != nil {
		return "", fmt.Errorf("mount %s (%s) on %s: %w", f[0], f[1], mnt, err)
	}
	return mnt, nil
}
