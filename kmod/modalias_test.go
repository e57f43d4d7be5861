// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"slices"
	"strings"
	"testing"
)

// TestMatchModalias: a device's modalias against patterns of the host's
// modules.alias, as modprobe matches them ("-" and "_" alike outside
// brackets, fnmatch globs).
func TestMatchModalias(t *testing.T) {
	ahci := []string{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv*sd*bc*sc*i*"}
	sd := []string{"scsi:t-0x00*", "scsi:t-0x07*", "scsi:t-0x0e*", "scsi:t-0x14*"}
	for _, tc := range []struct {
		patterns []string
		modalias string
		want     bool
	}{
		// q35's ICH9 AHCI controller, by class and by id.
		{ahci, "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", true},
		{ahci[1:], "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", true},
		// QEMU's NVMe controller (class 01 08 02) is not AHCI.
		{ahci, "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02", false},
		// A SCSI disk (type 0) and a CD-ROM (type 5).
		{sd, "scsi:t-0x00", true},
		{sd, "scsi:t-0x05", false},
		{sd, "scsi:t_0x0e", true},
		{[]string{"virtio:d00000002v*"}, "virtio:d00000002v00001AF4", true},
		{[]string{"virtio:d00000002v*"}, "virtio:d00000008v00001AF4", false},
		{[]string{"pci:v0000[0-9]*"}, "pci:v00001AF4", true},
		{[]string{"pci:v0000[0-"}, "pci:v00001AF4", false}, // malformed: matches nothing
		{[]string{"pci:v0000[!0-9]*"}, "pci:v00001AF4", false},
		{[]string{"pci:v0000[!0-9]*"}, "pci:v0000AF41", true},
		{nil, "pci:v00001AF4", false},
		{[]string{"*"}, "", true},
	} {
		if got := MatchModalias(tc.patterns, tc.modalias); got != tc.want {
			t.Errorf("MatchModalias(%q, %q) = %v, want %v", tc.patterns, tc.modalias, got, tc.want)
		}
	}
}

func TestDeviceAliases(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"block-major-8-*", "scsi:t-0x00*", "scsi:t-0x0e*"}, []string{"scsi:t-0x00*", "scsi:t-0x0e*"}},
		{[]string{"pci:v*d*sv*sd*bc01sc08i02*"}, []string{"pci:v*d*sv*sd*bc01sc08i02*"}},
		{[]string{"devname:nvme-fabrics", "char-major-10-123", "fs-btrfs"}, nil},
		// A driver of USB, ACPI or platform devices is not read by the init.
		{[]string{"pci:v00001033d00000194sv*sd*bc*sc*i*", "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*"}, nil},
		{[]string{"acpi*:PNP0C0A:*"}, nil},
		{nil, nil},
	} {
		if got := DeviceAliases(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("DeviceAliases(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzMatchModalias: never a panic; a pattern matches its own literal
// text, and whatever it matches it matches in either spelling of "-"
// (outside brackets, where kmod keeps it as it is).
func FuzzMatchModalias(f *testing.F) {
	f.Add("pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01")
	f.Add("scsi:t-0x00*", "scsi:t-0x00")
	f.Add("pci:v0000[0-", "pci:v0000")
	f.Add("a\\", "a")
	f.Fuzz(func(t *testing.T, pattern, modalias string) {
		got := MatchModalias([]string{pattern}, modalias)
		if !strings.Contains(modalias, "[") && MatchModalias([]string{pattern}, strings.ReplaceAll(modalias, "_", "-")) != got {
			t.Errorf("%q against %q: the spelling of - changed the match", pattern, modalias)
		}
		if !strings.ContainsAny(pattern, "*?[\\") && !MatchModalias([]string{pattern}, pattern) {
			t.Errorf("literal pattern %q does not match itself", pattern)
		}
		for _, a := range DeviceAliases([]string{pattern, modalias}) {
			if bus, _, _ := strings.Cut(a, ":"); !slices.Contains(DeviceBuses, bus) {
				t.Errorf("DeviceAliases kept %q, not on %v", a, DeviceBuses)
			}
		}
	})
}
