// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Options describe one QEMU run.
type Options struct {
	Kernel  string   // default Kernel(t)
	Initrd  string   // initramfs passed with -initrd; none when empty
	Disks   []string // raw images, attached as virtio disks vda, vdb, … in order
	Cmdline string   // appended to "console=ttyS0 panic=-1"
	// NoPanicOption leaves panic=-1 off the command line: a kernel panic
	// then takes the kernel's own timeout, or the one keel sets.
	NoPanicOption bool
	MemMiB        int // default 1024
	SMP           int // virtual CPUs, default 2
	// Timeout bounds each expectation and Wait; default DefaultTimeout. Both
	// are multiplied by KEEL_QEMU_TIMEOUT_SCALE.
	Timeout  time.Duration
	QEMUArgs []string // appended to the QEMU command line as they are
	// UEFI boots OVMF from pflash (NeedOVMF) instead of Kernel: no
	// -kernel, -initrd nor -append, so Initrd, Cmdline and NoPanicOption
	// are refused with it (validate); a disk must hold an ESP (ESP, ESPType) with the
	// kernel, such as a UKI at EFI/BOOT/BOOTX64.EFI.
	UEFI bool
}

// baseCmdline starts every kernel command line: the serial console the
// harness reads, and an immediate reboot on panic, which -no-reboot turns
// into QEMU's exit so a panicking test fails at once instead of timing out.
const baseCmdline = "console=ttyS0 panic=-1"

// qemuArgs builds QEMU's arguments. -nodefaults leaves out the default NIC
// (no network in tests), VGA and monitor; the serial port is stdio.
func qemuArgs(o Options, kvm bool) []string {
	machine, cpu := "q35,accel=tcg", "max"
	if kvm {
		machine, cpu = "q35,accel=kvm", "host"
	}
	mem, smp := o.MemMiB, o.SMP
	if mem == 0 {
		mem = 1024
	}
	if smp == 0 {
		smp = 2
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", machine, "-cpu", cpu,
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(smp),
		"-no-reboot", "-serial", "stdio",
	}
	if o.UEFI {
		args = append(args, uefiArgs()...)
	} else {
		args = append(args, "-kernel", o.Kernel)
	}
	if o.Initrd != "" && !o.UEFI {
		args = append(args, "-initrd", o.Initrd)
	}
	for _, d := range o.Disks {
		// A comma in a file name is written as two in QEMU's option syntax.
		args = append(args, "-drive", "file="+strings.ReplaceAll(d, ",", ",,")+",if=virtio,format=raw")
	}
	cmdline := baseCmdline
	if o.NoPanicOption {
		cmdline = strings.TrimSuffix(baseCmdline, " panic=-1")
	}
	if o.Cmdline != "" {
		cmdline += " " + o.Cmdline
	}
	if !o.UEFI {
		args = append(args, "-append", cmdline)
	}
	return append(args, o.QEMUArgs...)
}

// kvmRequested reports KEEL_KVM=1.
func kvmRequested() bool { return os.Getenv("KEEL_KVM") == "1" }

// quoteArgs renders a command line for a shell, to reproduce a run by hand.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// validate checks the options a test passes before QEMU would reject them.
func (o Options) validate() error {
	if o.MemMiB < 0 || o.SMP < 0 || o.Timeout < 0 {
		return fmt.Errorf("vm options: MemMiB %d, SMP %d, Timeout %v: want zero (default) or positive", o.MemMiB, o.SMP, o.Timeout)
	}
	if o.UEFI && (o.Initrd != "" || o.Cmdline != "" || o.NoPanicOption) {
		return fmt.Errorf("vm options: UEFI boots the kernel on the disks' ESP (UKI carries its initramfs and command line): Initrd %q, Cmdline %q, NoPanicOption %v are not used", o.Initrd, o.Cmdline, o.NoPanicOption)
	}
	for _, f := range append([]string{o.Kernel, o.Initrd}, o.Disks...) {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("vm options: %w", err)
		}
	}
	return nil
}
