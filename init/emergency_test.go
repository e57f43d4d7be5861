// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
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

// TestSyncThen: the emergency reboot follows the sync, and still comes when
// the sync never ends (a disk that stopped answering), saying so; it used
// to wait on the sync for ever, and a locked machine never restarted.
func TestSyncThen(t *testing.T) {
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), rep: &report.Report{}}
	synced, acted := false, 0
	act := func() error { acted++; return nil }
	if err := b.syncThen(act, func() { synced = true }, time.Hour); err != nil || !synced || acted != 1 || console.Len() != 0 {
		t.Errorf("err %v, synced %v, acted %d, console %q: want sync, then the reboot, silently", err, synced, acted, console.String())
	}
	stuck := make(chan struct{})
	defer close(stuck)
	want := errors.New("reboot: operation not permitted")
	if err := b.syncThen(func() error { acted++; return want }, func() { <-stuck }, time.Millisecond); err != want || acted != 2 {
		t.Errorf("err %v, acted %d: want the reboot tried and its error", err, acted)
	}
	if !strings.Contains(console.String(), "keel: the sync of the disks did not end in 1ms (a disk that does not answer?): going on without it") {
		t.Errorf("console %q: want the stalled sync named", console.String())
	}
}
