// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/shutdown"
)

func TestEmergencyPolicy(t *testing.T) {
	for _, tt := range []struct {
		rd     string
		locked bool
		want   string
	}{
		{"", false, kargs.EmergencyShell},
		{kargs.EmergencyShell, false, kargs.EmergencyShell},
		{kargs.EmergencyReboot, false, kargs.EmergencyReboot},
		{kargs.EmergencyPoweroff, false, kargs.EmergencyPoweroff},
		{"", true, kargs.EmergencyReboot},
		{kargs.EmergencyShell, true, kargs.EmergencyReboot},
		{kargs.EmergencyReboot, true, kargs.EmergencyReboot},
		{kargs.EmergencyPoweroff, true, kargs.EmergencyPoweroff},
		{"Shell", false, kargs.EmergencyReboot}, // kargs refuses it; reboot if it slips through
	} {
		if got := emergencyPolicy(tt.rd, tt.locked); got != tt.want {
			t.Errorf("emergencyPolicy(%q, locked %v) = %q, want %q", tt.rd, tt.locked, got, tt.want)
		}
	}
}

// TestSyncThen: the emergency reboot follows the sync; a sync that never
// ends (a disk that stopped answering) is waited for while the write-back
// gets on, by the shutdown's rule, then given up, said on the console, and
// the reboot comes. It used to wait on the sync for ever, and a locked
// machine never restarted; then it gave up at the first step in which the
// data waiting did not shrink, a rise then a fall or pages written while
// more were dirtied included, and cut a slow disk's write-back short.
func TestSyncThen(t *testing.T) {
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), rep: &report.Report{}}
	synced, acted := false, 0
	act := func() error { acted++; return nil }
	flat := func() (uint64, error) { return 100, nil }
	sys := shutdown.Sys{Sync: func() { synced = true }, Dirty: flat}
	if err := b.syncThen(act, sys, time.Hour); err != nil || !synced || acted != 1 || console.Len() != 0 {
		t.Errorf("err %v, synced %v, acted %d, console %q: want sync, then the reboot, silently", err, synced, acted, console.String())
	}
	for name, tc := range map[string]struct {
		left    []uint64 // Dirty+Writeback at each look
		written []uint64 // nr_written at each read, nil: unknown
		ok      bool
		looks   int // of Dirty, before the reboot
	}{
		"no progress":                        {left: []uint64{500}, ok: true, looks: 4},
		"progress, then a stall":             {left: []uint64{900, 600, 300, 300}, ok: true, looks: 6},
		"a rise, then a fall, then a stall":  {left: []uint64{300, 900, 600, 300, 300}, ok: true, looks: 7},
		"pages written while more are dirty": {left: []uint64{500}, written: []uint64{10, 20, 30, 40, 40}, ok: true, looks: 6},
		"meminfo cannot be read":             {left: []uint64{0}, looks: 1},
	} {
		synctest.Test(t, func(t *testing.T) {
			console.Reset()
			stuck := make(chan struct{})
			defer close(stuck)
			looks, reads := 0, 0
			sys := shutdown.Sys{Sync: func() { <-stuck }, Dirty: func() (uint64, error) {
				n := tc.left[min(looks, len(tc.left)-1)]
				looks++
				if !tc.ok {
					return 0, errors.New("meminfo: no Dirty line")
				}
				return n, nil
			}}
			if tc.written != nil {
				sys.Written = func() (uint64, error) {
					n := tc.written[min(reads, len(tc.written)-1)]
					reads++
					return n, nil
				}
			}
			want := errors.New("reboot: operation not permitted")
			if err := b.syncThen(func() error { return want }, sys, 10*time.Second); err != want || looks != tc.looks {
				t.Errorf("%s: err %v, %d looks at the data left: want the reboot tried after %d", name, err, looks, tc.looks)
			}
			if !strings.Contains(console.String(), "keel: the sync of the disks was given up (timed out") {
				t.Errorf("%s: console %q: want the stalled sync named", name, console.String())
			}
		})
	}
}

// TestEmergencyConfigBeforeTheConfigPhase: a failure before the config
// phase follows the baked rd.emergency= and rd.emergency.timeout=, then
// the kernel's command line when /proc can be read; it used to take the
// zero configuration, a shell that waits forever. So does one beside the
// sequence (a loader's panic in early-mounts), which reads the baked
// configuration again rather than the boot's. Once the config phase ran,
// its configuration stands.
func TestEmergencyConfigBeforeTheConfigPhase(t *testing.T) {
	oldCmdline, oldBaked := procCmdline, bakedPath
	t.Cleanup(func() { procCmdline, bakedPath = oldCmdline, oldBaked })
	dir := t.TempDir()
	bakedPath = filepath.Join(dir, "initrd.json")
	baked := &bakedconf.Config{Version: bakedconf.Version, Cmdline: "rd.emergency=reboot rd.emergency.timeout=30"}
	raw, err := baked.Marshal()
	must(t, err)
	must(t, os.WriteFile(bakedPath, raw, 0o644))
	for _, tc := range []struct {
		name, kernel string // kernel "" : /proc not mounted
		configured   bool
		aside        bool
		policy       string
		timeout      time.Duration
	}{
		{"baked, no /proc", "", false, false, kargs.EmergencyReboot, 30 * time.Second},
		{"the kernel's over the baked", "quiet rd.emergency=poweroff", false, false, kargs.EmergencyPoweroff, 30 * time.Second},
		{"beside the sequence", "", false, true, kargs.EmergencyReboot, 30 * time.Second},
		{"after the config phase", "rd.emergency=poweroff", true, false, kargs.EmergencyShell, 0},
	} {
		procCmdline = filepath.Join(dir, "missing")
		if tc.kernel != "" {
			procCmdline = filepath.Join(dir, "cmdline")
			must(t, os.WriteFile(procCmdline, []byte(tc.kernel+"\n"), 0o644))
		}
		b := &boot{baked: baked, log: newLogger(nil)}
		if tc.aside {
			b.baked = nil // the sequence's, not to be read beside it
			b.guard().aside = true
		}
		if tc.configured {
			b.cfg = kargs.Defaults()
			b.configured.Store(true)
		}
		o := b.emergencyConfig()
		if got := emergencyPolicy(o.Emergency, o.locked); got != tc.policy || o.EmergencyTimeout != tc.timeout {
			t.Errorf("%s: policy %s, timeout %v; want %s, %v", tc.name, got, o.EmergencyTimeout, tc.policy, tc.timeout)
		}
	}
}
