// SPDX-License-Identifier: Apache-2.0

package main

import (
	"testing"

	kargs "github.com/keel-boot/keel/kernel-args"
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
