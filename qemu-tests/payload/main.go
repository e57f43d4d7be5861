// SPDX-License-Identifier: Apache-2.0

// Command payload is the init of keel's test root images: keel switch_roots
// into it as PID 1. It prints what the tests assert about the booted root
// (see package report for the line format), runs the test actions named on
// the kernel command line, and powers the machine off.
//
// PID 1 must never exit (that is a kernel panic), so every error is printed
// and followed by a power-off, and a failed power-off waits forever.
package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/qemu-tests/report"
)

func main() {
	sys := hostSystem()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stdout, report.Line(report.KeyError, fmt.Sprintf("panic: %v", r)))
		}
		powerOff()
	}()
	run(os.Stdout, sys)
}

// hostSystem is the real machine: the root is /, /proc is mounted with mount(2).
func hostSystem() system {
	return system{
		root:    "/",
		args:    os.Args,
		environ: os.Environ(),
		pid:     os.Getpid(),
		mount: func(source, target, fstype string) error {
			return unix.Mount(source, target, fstype, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		},
	}
}

// powerOff syncs and powers off; it never returns.
func powerOff() {
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintln(os.Stdout, report.Line(report.KeyError, fmt.Sprintf("power off: %v", err)))
	for {
		time.Sleep(time.Hour)
	}
}
