// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"strings"

	kargs "github.com/keel-boot/keel/kernel-args"
)

// PanicTimeout is how long a kernel panic stays on the screen before the
// machine restarts, when the command line does not say (panic=): keel
// sets it so that a panic is a reboot, which boot counting counts, not a
// machine stopped until someone power-cycles it. Debian's kernels are built
// with CONFIG_PANIC_TIMEOUT=0 (stop for ever), and a panic can come from
// any image: the new slot's init exiting after switch_root, a crash of
// PID 1, a driver. With a hardware watchdog (rd.watchdog=) the watchdog
// would reset such a machine too; without one, this is the only way back.
const PanicTimeout = 10

// panicSysctl is the kernel's panic timeout; a variable for tests.
var panicSysctl = "/proc/sys/kernel/panic"

// setPanicTimeout sets kernel.panic to PanicTimeout seconds unless the
// kernel command line sets panic= (the operator's choice, 0 included) or
// the kernel was built with a timeout. A failure is a warning: the boot
// goes on. The booted system's sysctl.d may set it again.
func (b *boot) setPanicTimeout(cmdline string) {
	if panicGiven(cmdline) {
		return
	}
	cur, err := os.ReadFile(panicSysctl)
	if err != nil {
		b.log.Warnf("kernel panic timeout: %v", err)
		return
	}
	if strings.TrimSpace(string(cur)) != "0" {
		return
	}
	if err := os.WriteFile(panicSysctl, fmt.Appendf(nil, "%d\n", PanicTimeout), 0o644); err != nil {
		b.log.Warnf("kernel panic timeout: %v: a kernel panic will stop the machine until it is power-cycled", err)
		return
	}
	b.log.Debugf("kernel panic timeout set to %d s (no panic= on the command line)", PanicTimeout)
}

// panicGiven reports whether the kernel applied a panic= of the command
// line: a parameter before "--", as the kernel splits the line (after it,
// the words are the init's).
func panicGiven(cmdline string) bool {
	for _, p := range kargs.SplitKernel(cString(cmdline)) {
		if p.Key == "--" && !p.HasValue {
			return false
		}
		if p.Name() == "panic" {
			return true
		}
	}
	return false
}
