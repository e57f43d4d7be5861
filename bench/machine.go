// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine is what the figures were measured on; absolute times under TCG
// depend on the host CPU, ratios much less.
type Machine struct {
	CPU         string // model name from /proc/cpuinfo
	Cores       int
	HostKernel  string
	GuestKernel string // release of the kernel booted in QEMU
	QEMU        string // first line of qemu-system-x86_64 --version
	Accel       string // the QEMU machine and CPU options
	// Load is /proc/loadavg's 1, 5 and 15 minute averages when the bench
	// started: anything else running skews every figure.
	Load string
}

// DescribeMachine gathers Machine; what cannot be read is left empty.
func DescribeMachine(guestKernel string, kvm bool) Machine {
	m := Machine{Cores: runtime.NumCPU(), GuestKernel: guestKernel,
		Accel: "-machine q35,accel=tcg -cpu max -m 1024 -smp 2"}
	if kvm {
		m.Accel = "-machine q35,accel=kvm -cpu host -m 1024 -smp 2"
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.HostKernel = unix.ByteSliceToString(u.Release[:])
	}
	if out, err := exec.Command("qemu-system-x86_64", "--version").Output(); err == nil {
		m.QEMU, _, _ = strings.Cut(string(out), "\n")
	}
	return m
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
