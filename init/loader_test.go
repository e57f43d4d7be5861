// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/efivar"
	"github.com/keel-boot/keel/report"
)

// TestLoaderPartUUID: a BIOS boot reads nothing; a UEFI boot reads
// LoaderDevicePartUUID once, reports it, and a variable that cannot be
// read (efivarfs not mountable, damaged bytes) is said loudly and leaves
// the choice to the labels.
func TestLoaderPartUUID(t *testing.T) {
	const guid = "8F3A1C2E-5B6D-4E7F-9A0B-1C2D3E4F5A6B"
	utf16le := func(s string) []byte {
		b := []byte{6, 0, 0, 0}
		for _, c := range s {
			b = append(b, byte(c), 0)
		}
		return b
	}
	for _, tc := range []struct {
		name     string
		uefi     bool
		value    []byte // nil: no variable
		mountErr error
		want     string
		warn     string
	}{
		{name: "BIOS", want: ""},
		{name: "UEFI without the variable", uefi: true, want: ""},
		{name: "UEFI", uefi: true, value: utf16le(guid + "\x00"), want: strings.ToLower(guid)},
		{name: "damaged", uefi: true, value: utf16le("not a guid"), warn: "expected a GUID"},
		{name: "kept across boots", uefi: true, value: append([]byte{7, 0, 0, 0}, utf16le(guid)[4:]...), warn: "kept in the firmware's flash across boots"},
		{name: "efivarfs not mountable", uefi: true, value: utf16le(guid), mountErr: errors.New("no such device"), warn: "no such device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			oldSys, oldDir, oldMount := efiSysfs, efivarsDir, mountEfivarfs
			t.Cleanup(func() { efiSysfs, efivarsDir, mountEfivarfs = oldSys, oldDir, oldMount })
			efiSysfs, efivarsDir = filepath.Join(dir, "efi"), filepath.Join(dir, "efivars")
			mounts := 0
			mountEfivarfs = func(*boot) error { mounts++; return tc.mountErr }
			must(t, os.MkdirAll(efivarsDir, 0o755))
			if tc.uefi {
				must(t, os.MkdirAll(efiSysfs, 0o755))
			}
			if tc.value != nil {
				must(t, os.WriteFile(filepath.Join(efivarsDir, efivar.LoaderDevicePartUUIDName), tc.value, 0o644))
			}
			var console bytes.Buffer
			b := &boot{log: newLogger(&console), rep: &report.Report{}}
			got := b.loaderPartUUID()
			if again := b.loaderPartUUID(); again != got || mounts > 1 {
				t.Errorf("read twice: %q then %q, %d mounts", got, again, mounts)
			}
			if got != tc.want || b.rep.LoaderPartUUID != tc.want {
				t.Errorf("loaderPartUUID = %q, reported %q: want %q", got, b.rep.LoaderPartUUID, tc.want)
			}
			w := strings.Join(b.rep.Warnings, "\n")
			switch {
			case tc.warn == "" && w != "":
				t.Errorf("warnings %q: want none", w)
			case tc.warn != "" && (!strings.Contains(w, tc.warn) || !strings.Contains(w, "chosen by its partition labels alone")):
				t.Errorf("warnings %q: want %q and what the boot does", w, tc.warn)
			}
			if !tc.uefi && mounts != 0 {
				t.Errorf("a BIOS boot mounted efivarfs")
			}
		})
	}
}

// TestLockedRivals: on a locked initramfs, a disk the firmware's boot
// partition chose is refused while another disk holds every slot label,
// at the choice and when the report is written; unlocked, or chosen by its
// labels, it stands.
func TestLockedRivals(t *testing.T) {
	slotsOn := func(disk string) []devices.DiskPart {
		var ps []devices.DiskPart
		for i, l := range devices.SlotLabels() {
			ps = append(ps, devices.DiskPart{Disk: disk, Part: devices.PartitionName(disk, i+1), Label: l})
		}
		return ps
	}
	for _, tc := range []struct {
		name     string
		locked   bool
		byLoader bool
		strays   []devices.DiskPart
		want     string
	}{
		{"locked, a rival", true, true, slotsOn("sda"), "more than one system disk: /dev/vdb holds PARTUUID=esp-uuid, the partition the firmware loaded the kernel from, and /dev/sda holds every slot label too: the initramfs is locked"},
		{"locked, strays that are no rival", true, true, slotsOn("sda")[:2], ""},
		{"unlocked, a rival", false, true, slotsOn("sda"), ""},
		{"locked, chosen by the labels", true, false, slotsOn("sda"), ""},
	} {
		b := &boot{baked: &bakedconf.Config{Locked: tc.locked}}
		b.sys.loader.uuid = "esp-uuid"
		err := b.lockedRivals(devices.SystemDisk{Disk: "vdb", ByLoader: tc.byLoader, Strays: tc.strays}, "")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want none", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, devices.ErrTwoSystemDisks)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
