// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/report"
)

const realConsole = `[    2.000000] Run /init as init process
[    2.300000] keel: keel starting: console=ttyS0 overlay=persistent
[    3.100000] keel: switching root to /newroot, exec /sbin/init (0.8s since start)
[    3.400000] systemd[1]: systemd 252.39-1~deb12u2 running in system mode (+PAM)
[    9.500000] KEEL-BENCH: multi-user.target reached
KEEL-BENCH: boot.json: {"version":1,"mode":"slot","slot":"a","authenticated":true,"overlay":"persistent","data":{"device":"/dev/vda6","fstype":"btrfs","seeded":true,"fresh_upper":true},"phases":[{"name":"data","ms":500}]}
KEEL-BENCH: done
`

func TestParseRealBoot(t *testing.T) {
	b, err := ParseRealBoot(realConsole)
	if err != nil {
		t.Fatal(err)
	}
	if b.InInitramfs() != 1400*time.Millisecond || b.MultiUser != 9500*time.Millisecond || b.KeelSwitch != 3100*time.Millisecond {
		t.Errorf("ParseRealBoot = %+v", b)
	}
	if err := (RealCase{Keel: true, First: true}).Check(b); err != nil {
		t.Errorf("first-boot case: %v", err)
	}
	for _, c := range []RealCase{{Keel: true}, {Keel: true, First: true, Encrypted: true}, {}} {
		if err := c.Check(b); err == nil {
			t.Errorf("case %+v accepted a first, plain keel boot", c)
		}
	}
}

func TestParseRealBootErrors(t *testing.T) {
	tests := []struct{ name, console, want string }{
		{"no systemd", "[    1.000000] Run /init as init process\n", "systemd did not start"},
		{"no target", "[    1.000000] Run /init as init process\n[    2.000000] systemd[1]: systemd 252\n", "multi-user.target was not reached"},
		{"order", "[    0.500000] systemd[1]: systemd 252\n[    1.000000] Run /init as init process\n[    3.000000] KEEL-BENCH: multi-user.target reached\n", "in that order"},
	}
	for _, tt := range tests {
		if _, err := ParseRealBoot(tt.console); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ParseRealBoot: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestRealCaseData(t *testing.T) {
	steady := &report.Report{Mode: "slot", Slot: "a", Authenticated: true, Overlay: "persistent",
		Data: &report.Data{FSType: "btrfs", Encrypted: true}}
	b := RealBoot{Boot: Boot{Report: steady}}
	if err := (RealCase{Keel: true, Encrypted: true}).Check(b); err != nil {
		t.Errorf("steady LUKS boot: %v", err)
	}
	steady.Data.Volatile = true
	if err := (RealCase{Keel: true, Encrypted: true}).Check(b); err == nil || !strings.Contains(err.Error(), "volatile") {
		t.Errorf("volatile boot: %v, want refused", err)
	}
	steady.Data = nil
	if err := (RealCase{Keel: true}).Check(b); err == nil {
		t.Error("a boot without a data partition was accepted")
	}
}

func TestRealTargetsAndMarkdown(t *testing.T) {
	boot := func(in, mu time.Duration) RealBoot {
		return RealBoot{Boot: Boot{RunInit: time.Second, KeelSwitch: time.Second + in, RootInit: time.Second + in + 300*time.Millisecond, Report: &report.Report{}}, MultiUser: mu}
	}
	r := Results{
		KeelSmall: Row{Boot: Summary{N: 1, Median: 500 * time.Millisecond}},
		Peers:     []Row{{Name: "tiny-initramfs", Boot: Summary{N: 1, Median: 600 * time.Millisecond}}},
		Generic:   Row{Size: 4 << 20},
		RealRuns:  2,
		RealPath: []RealRow{
			SummarizeReal(realGenericPrefix+", "+realFirstSuffix, "generic", 1, []RealBoot{boot(2*time.Second, 9*time.Second), boot(3*time.Second, 10*time.Second)}),
			SummarizeReal(realGenericPrefix+", "+realSteadySuffix, "generic", 1, []RealBoot{boot(time.Second, 8*time.Second)}),
		},
	}
	var met []bool
	for _, tg := range r.RealTargets() {
		met = append(met, tg.Met)
	}
	// first boot: median exec 2.5 s (met, the limit is inclusive); steady 1 s;
	// plain ×0.83 of tiny; 4 MiB exactly.
	if want := []bool{true, true, true, true}; !equalBools(met, want) {
		t.Errorf("targets met %v, want %v", met, want)
	}
	if got := r.RealPath[0].FromInit.Median; got != 8500*time.Millisecond {
		t.Errorf("multi-user.target after Run /init: median %v, want 8.5 s", got)
	}
	if got := r.RealPath[0].InInitramfs.Median; got != 2800*time.Millisecond {
		t.Errorf("Run /init → systemd's first line: median %v, want 2.8 s", got)
	}
	md := r.Markdown()
	for _, want := range []string{"### The real path", "| keel generic, btrfs, first boot | generic |", "#### Targets (issue 14)", "### Where the time goes: keel generic, btrfs, steady state"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown has no %q:\n%s", want, md)
		}
	}
	r.Generic.Size++
	if r.RealTargets()[3].Met {
		t.Error("an image of 4 MiB + 1 byte met the 4 MiB target")
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
