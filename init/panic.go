// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	kargs "github.com/keel-boot/keel/kernel-args"
)

// PanicTimeout is how long a kernel panic stays on the screen before the
// machine restarts, when the command line does not say (panic=): keel
// sets it so that a panic is a reboot, which boot counting counts, not a
// machine stopped until someone power-cycles it. Debian's kernels are built
// with CONFIG_PANIC_TIMEOUT=0 (stop for ever), and a panic can come from
// any image: the new slot's init exiting or missing after switch_root, a
// driver, an oops the kernel turns into one. (systemd catches its own
// crashes and freezes unless told systemd.crash_reboot=1.) With a hardware
// watchdog (rd.watchdog=) the watchdog would reset such a machine too;
// without one, this is the only way back.
const PanicTimeout = 10

// panicSysctl is the kernel's panic timeout; a variable for tests.
var panicSysctl = "/proc/sys/kernel/panic"

// setPanicTimeout sets kernel.panic to PanicTimeout seconds unless the
// kernel command line sets it (the operator's choice, 0 included), the
// kernel was built with a timeout, or the emergency policy is poweroff (a
// machine meant to stay down on a failure). A failure is a warning: the
// boot goes on. The booted system's sysctl.d may set it again.
func (b *boot) setPanicTimeout(cmdline string, policy string) {
	if panicGiven(cmdline) || policy == kargs.EmergencyPoweroff {
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

// panicGiven reports whether the kernel applied a panic timeout of the
// command line: panic=N with an integer N (kstrtoint's: a sign, 0x or 0
// prefixes), or the sysctl kernel.panic set from the line, which Linux 5.8
// and later apply before the init runs (sysctl.kernel.panic=N, or with '/'
// for any of the dots: sysctl/kernel/panic=N); a parameter before "--"
// as the kernel splits the line (after it, the words are the init's), read
// as the kernel's next_arg reads it (kargs.SplitNextArg: panic=5" is the
// value 5", which the kernel refuses; found in review). A value that is
// not a number is not applied: the kernel's 0 stays.
func panicGiven(cmdline string) bool {
	for _, p := range kargs.SplitNextArg(kargs.KernelOptions(cString(cmdline))) {
		if !p.HasValue {
			continue
		}
		switch {
		case p.Name() == "panic":
			if _, ok := kstrtoint(p.Value); ok {
				return true
			}
		case isPanicSysctl(p.Key):
			if dointvec(p.Value) {
				return true
			}
		}
	}
	return false
}

// isPanicSysctl reports whether key sets the sysctl kernel.panic as the
// kernel's process_sysctl_arg reads it: "sysctl", then '.' or '/', then a
// path whose dots are slashes.
func isPanicSysctl(key string) bool {
	rest, ok := strings.CutPrefix(key, "sysctl")
	if !ok || rest == "" || rest[0] != '.' && rest[0] != '/' {
		return false
	}
	return strings.ReplaceAll(rest[1:], ".", "/") == "kernel/panic"
}

// kstrtoint parses s as the kernel's kstrtoint(s, 0) does, which reads
// panic=: an optional sign ('+' only before the digits of a positive
// number), "0x" before hexadecimal digits, a leading 0 for octal, else
// decimal, one trailing newline allowed, and a value that fits an int.
// Go's ParseInt(s, 0, 32) takes underscores, 0b and 0o as well, which the
// kernel refuses: panic=1_0 was taken as set while the kernel's 0 stayed,
// and a panic then stopped the machine for good (found by a hunting
// helper).
func kstrtoint(s string) (int32, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	} else {
		s = strings.TrimPrefix(s, "+")
	}
	base := 10
	switch {
	case len(s) >= 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isHexDigit(s[2]):
		base, s = 16, s[2:]
	case strings.HasPrefix(s, "0"):
		base = 8
	}
	s = strings.TrimSuffix(s, "\n")
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 64) // an explicit base takes no '_'
	switch {
	case err != nil:
		return 0, false
	case neg && n <= 1<<31:
		return int32(-int64(n)), true
	case !neg && n < 1<<31:
		return int32(n), true
	}
	return 0, false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// dointvec reports whether the kernel's proc_dointvec takes v, written to
// /proc/sys/kernel/panic from the command line: white space, an optional
// '-' (no '+'), then digits (0x and a leading 0 as kstrtoint), then white
// space or the end, fewer than 21 characters for the number (found in
// review: kstrtoint took sysctl.kernel.panic=+5, which the kernel refuses).
func dointvec(v string) bool {
	num := strings.TrimLeft(v, " \t\n")
	if i := strings.IndexAny(num, " \t\n"); i >= 0 {
		num = num[:i]
	}
	digits := strings.TrimPrefix(num, "-")
	if len(num) >= 21 || digits == "" || digits[0] < '0' || digits[0] > '9' {
		return false
	}
	_, ok := kstrtoint(num)
	return ok
}
