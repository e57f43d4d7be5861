// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
)

func TestPanicGiven(t *testing.T) {
	for line, want := range map[string]bool{
		"console=ttyS0 panic=-1":        true,
		"panic=0 quiet":                 true,
		"quiet":                         false,
		"panic_on_warn=1 oops=panic":    false,
		"init=/sbin/init -- panic=5":    false, // the init's argument, not the kernel's
		"x\xa0panic=5":                  true,  // 0xA0 is a space to the kernel
		"slot=b\x00panic=5":             false, // after the C string's end
		"rd.debug panic=10 -- single":   true,
		"panic":                         false, // not applied: the kernel's 0 stays
		"panic=":                        false,
		"panic=abc":                     false,
		"panic=0x10":                    true,
		"panic=-1":                      true,
		"sysctl.kernel.panic=0":         true,
		"sysctl.kernel/panic=30":        true,
		"sysctl.kernel.panic_on_oops=1": false,
		"":                              false,
		// As the kernel's kstrtoint reads it (found by a hunting helper):
		// Go's syntax beyond it is not applied.
		"panic=1_0":         false,
		"panic=0b1":         false,
		"panic=0o7":         false,
		"panic=010":         true, // octal
		"panic=08":          false,
		"panic=+5":          true,
		"panic=-+5":         false,
		"panic=0X1f":        true,
		"panic=0x":          false,
		"panic=2147483647":  true,
		"panic=2147483648":  false,
		"panic=-2147483648": true,
		"panic=-2147483649": false,
		// The kernel's "--" (a leading quote and then a trailing one
		// removed, no other): -""- is a word of its own.
		`-""- panic=0`:       true,
		`"--" panic=0`:       false,
		`"--"x panic=0`:      true,
		`a="b -- c" panic=0`: true,
		// Quotes as the kernel's next_arg leaves them (found in review):
		// a quote inside a value is the value's, and kstrtoint refuses it.
		`panic=5"`:   false,
		`panic=5""`:  false,
		`panic=""5`:  false,
		`panic=1"0"`: false,
		`panic="5"`:  true,
		`"panic=5"`:  true,
		// The sysctl, as process_sysctl_arg reads its name and writes its
		// value: '/' or '.' anywhere, and a value it takes.
		"sysctl/kernel/panic=0":   true,
		"sysctl/kernel.panic=7":   true,
		"sysctl.kernel.panic=":    false,
		"sysctl.kernel.panic=x":   false,
		"sysctl.kernel.panicky=1": false,
		"sysctlkernel.panic=1":    false,
		// proc_dointvec's reading (found in review): no '+'.
		"sysctl.kernel.panic=+5":   false,
		"sysctl.kernel.panic=-1":   true,
		`"sysctl.kernel.panic=5 "`: true,
	} {
		if got := panicGiven(line); got != want {
			t.Errorf("panicGiven(%q) = %v, want %v", line, got, want)
		}
	}
}

// TestSetPanicTimeout: without panic= on the command line, a kernel that
// would stop for ever on a panic (0) gets PanicTimeout; panic= (even 0)
// and a kernel built with a timeout are left alone.
func TestSetPanicTimeout(t *testing.T) {
	for _, tc := range []struct{ cmdline, policy, was, want string }{
		{"quiet", kargs.EmergencyShell, "0\n", "10\n"},
		{"quiet", kargs.EmergencyReboot, "0\n", "10\n"},
		{"quiet panic=0", kargs.EmergencyShell, "0\n", "0\n"},
		{"quiet", kargs.EmergencyShell, "30\n", "30\n"},
		{"quiet", kargs.EmergencyShell, "-1\n", "-1\n"},
		{"quiet", kargs.EmergencyPoweroff, "0\n", "0\n"}, // meant to stay down
	} {
		p := filepath.Join(t.TempDir(), "panic")
		if err := os.WriteFile(p, []byte(tc.was), 0o644); err != nil {
			t.Fatal(err)
		}
		old := panicSysctl
		panicSysctl = p
		var console bytes.Buffer
		b := &boot{log: newLogger(&console), rep: &report.Report{}}
		b.setPanicTimeout(tc.cmdline, tc.policy)
		panicSysctl = old
		if got, _ := os.ReadFile(p); string(got) != tc.want {
			t.Errorf("%q (%s) with %q: kernel.panic %q, want %q", tc.cmdline, tc.policy, tc.was, got, tc.want)
		}
	}
	old := panicSysctl
	defer func() { panicSysctl = old }()
	panicSysctl = filepath.Join(t.TempDir(), "missing")
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), rep: &report.Report{}}
	b.setPanicTimeout("quiet", kargs.EmergencyShell)
	if !bytes.Contains(console.Bytes(), []byte("kernel panic timeout: ")) {
		t.Errorf("console %q: want the failure named", console.String())
	}
}

// FuzzPanicGiven: a command line that starts with panic=N gives the panic
// timeout, one whose first word is "--" (what follows is the init's) does
// not, and no command line makes it panic.
func FuzzPanicGiven(f *testing.F) {
	f.Add("console=ttyS0 panic=-1")
	f.Add(`a="panic=5 b" -- panic=3`)
	f.Add("sysctl.kernel.panic=0")
	f.Fuzz(func(t *testing.T, rest string) {
		panicGiven(rest)
		if !panicGiven("panic=5 " + rest) {
			t.Fatalf("panic=5 %s: not given", rest)
		}
		if panicGiven("-- " + rest) {
			t.Fatalf("-- %s: given, though after -- everything is the init's", rest)
		}
	})
}
