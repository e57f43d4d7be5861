// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"strings"
	"testing"
	"time"
)

const keelConsole = `[    0.000000] Linux version 6.1.0-56-amd64
[    2.227100] Run /init as init process
[    2.470991] keel: keel starting: console=ttyS0 overlay=tmpfs
[    4.439940] keel: switching root to /newroot, exec /sbin/init (2.029s since start)
[    4.623658] KEEL-BENCH: root init reached
KEEL-BENCH: boot.json: {"version":1,"mode":"slot","slot":"a","phases":[{"name":"devices","ms":1402.9},{"name":"root","ms":544}]}
KEEL-BENCH: done
[    4.700000] reboot: Power down
`

func TestParseBootKeel(t *testing.T) {
	b, err := ParseBoot(keelConsole)
	if err != nil {
		t.Fatal(err)
	}
	want := Boot{RunInit: 2227100 * time.Microsecond, RootInit: 4623658 * time.Microsecond,
		KeelStart: 2470991 * time.Microsecond, KeelSwitch: 4439940 * time.Microsecond}
	if b.RunInit != want.RunInit || b.RootInit != want.RootInit || b.KeelStart != want.KeelStart || b.KeelSwitch != want.KeelSwitch {
		t.Errorf("ParseBoot = %+v, want %+v", b, want)
	}
	if got := b.InInitramfs(); got != 2396558*time.Microsecond {
		t.Errorf("InInitramfs = %v", got)
	}
	if b.Report == nil || b.Report.Slot != "a" || len(b.Report.Phases) != 2 || b.Report.Phases[0].Ms != 1402.9 {
		t.Errorf("report %+v", b.Report)
	}
}

func TestParseBootErrors(t *testing.T) {
	tests := []struct {
		name, console, want string
	}{
		{"no timestamps", "Run /init as init process\nKEEL-BENCH: root init reached\n", "printk.time=1"},
		{"no marker", "[    1.000000] Run /init as init process\n", "root's init did not run"},
		{"marker first", "[    1.000000] KEEL-BENCH: root init reached\n[    2.000000] Run /init as init process\n", "expected it after"},
		{"bad json", "[    1.000000] Run /init as init process\n[    2.000000] KEEL-BENCH: root init reached\nKEEL-BENCH: boot.json: {\"version\":\"x\"}\n", "boot.json line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBoot(tt.console)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseBoot: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestKernelTime(t *testing.T) {
	tests := []struct {
		console string
		want    time.Duration
		ok      bool
	}{
		{"[   12.345678] Run /init as init process", 12345678 * time.Microsecond, true},
		// systemd's status output may run into the kernel's line.
		{"\x1b[0m] Started x[    3.000001] Run /init as init process", 3000001 * time.Microsecond, true},
		{"[ 1.5] Run /init as init process", 0, false},
		{"[    1.000000] Run /sbin/init as init process", 0, false},
	}
	for _, tt := range tests {
		got, ok := KernelTime(tt.console, RunInitLine)
		if got != tt.want || ok != tt.ok {
			t.Errorf("KernelTime(%q) = %v, %v; want %v, %v", tt.console, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseBoot: any console output gives a boot or an error, never a panic,
// and a boot never ends before it started.
func FuzzParseBoot(f *testing.F) {
	f.Add(keelConsole)
	f.Add("[    1.000000] Run /init as init process\n[    0.500000] KEEL-BENCH: root init reached\n")
	f.Fuzz(func(t *testing.T, console string) {
		b, err := ParseBoot(console)
		if err == nil && b.InInitramfs() < 0 {
			t.Errorf("negative time in the initramfs: %+v", b)
		}
	})
}
