// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// msg builds a datagram the way the kernel sends it: NUL-separated fields.
func msg(fields ...string) []byte { return []byte(strings.Join(fields, "\x00") + "\x00") }

func TestParseUevent(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Uevent
	}{{
		name: "disk add",
		in: msg("add@/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "ACTION=add",
			"DEVPATH=/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "SUBSYSTEM=block",
			"MAJOR=254", "MINOR=0", "DEVNAME=vda", "DEVTYPE=disk", "DISKSEQ=1", "SEQNUM=1071"),
		want: Uevent{Action: "add", DevPath: "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda",
			Subsystem: "block", DevName: "vda", DevType: "disk", Major: 254, Minor: 0},
	}, {
		name: "partition add with PARTNAME",
		in: msg("add@/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1", "ACTION=add",
			"DEVPATH=/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1", "SUBSYSTEM=block",
			"MAJOR=254", "MINOR=1", "DEVNAME=vda1", "DEVTYPE=partition", "DISKSEQ=1", "PARTN=1",
			"PARTNAME=root-a", "SEQNUM=1072"),
		want: Uevent{Action: "add", DevPath: "/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/vda1",
			Subsystem: "block", DevName: "vda1", DevType: "partition", Major: 254, Minor: 1,
			PartName: "root-a", PartN: 1},
	}, {
		name: "change from coldplug",
		in: msg("change@/devices/virtual/block/loop0", "ACTION=change", "DEVPATH=/devices/virtual/block/loop0",
			"SUBSYSTEM=block", "SYNTH_UUID=0", "MAJOR=7", "MINOR=0", "DEVNAME=loop0", "DEVTYPE=disk"),
		want: Uevent{Action: "change", DevPath: "/devices/virtual/block/loop0", Subsystem: "block",
			DevName: "loop0", DevType: "disk", Major: 7},
	}, {
		name: "block without DEVNAME takes the kobject name",
		in:   msg("remove@/devices/virtual/block/dm-0", "ACTION=remove", "SUBSYSTEM=block", "DEVTYPE=disk"),
		want: Uevent{Action: "remove", DevPath: "/devices/virtual/block/dm-0", Subsystem: "block", DevName: "dm-0", DevType: "disk"},
	}, {
		name: "non-block",
		in:   msg("add@/module/virtio_blk", "ACTION=add", "DEVPATH=/module/virtio_blk", "SUBSYSTEM=module", "SEQNUM=1000"),
		want: Uevent{Action: "add", DevPath: "/module/virtio_blk", Subsystem: "module"},
	}, {
		name: "value containing =",
		in:   msg("bind@/devices/x", "SUBSYSTEM=virtio", "MODALIAS=a=b"),
		want: Uevent{Action: "bind", DevPath: "/devices/x", Subsystem: "virtio"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUevent(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			env := got.Env
			got.Env = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if env["SUBSYSTEM"] != tt.want.Subsystem {
				t.Errorf("Env[SUBSYSTEM] = %q, want %q", env["SUBSYSTEM"], tt.want.Subsystem)
			}
		})
	}
}

func TestParseUeventRejects(t *testing.T) {
	tests := []struct {
		name, wantErr string
		in            []byte
	}{
		{"libudev", "udev message", append([]byte("libudev\x00\xfe\xed\xca\xfe"), msg("SUBSYSTEM=block")...)},
		{"empty", "want ACTION@/DEVPATH", nil},
		{"no at", "want ACTION@/DEVPATH", msg("add/devices/x", "SUBSYSTEM=block")},
		{"empty action", "want ACTION@/DEVPATH", msg("@/devices/x")},
		{"relative devpath", "want ACTION@/DEVPATH", msg("add@devices/x")},
		{"field without =", "want KEY=VALUE", msg("add@/devices/x", "SUBSYSTEM")},
		{"bad major", `MAJOR="-1"`, msg("add@/devices/x", "SUBSYSTEM=block", "MAJOR=-1")},
		{"huge minor", "MINOR", msg("add@/devices/x", "SUBSYSTEM=block", "MINOR=4294967296")},
		{"bad PARTN", "PARTN", msg("add@/devices/x", "SUBSYSTEM=block", "PARTN=one")},
	}
	for _, tt := range tests {
		_, err := ParseUevent(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err = %v, want it to contain %q", tt.name, err, tt.wantErr)
		}
	}
	if _, err := ParseUevent([]byte("libudev\x00x")); !errors.Is(err, ErrUdevMessage) {
		t.Errorf("libudev message: err = %v, want ErrUdevMessage", err)
	}
}

func TestUeventParent(t *testing.T) {
	tests := []struct{ devpath, devtype, want string }{
		{"/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p2", "partition", "nvme0n1"},
		{"/devices/virtual/block/vda/vda1", "partition", "vda"},
		{"/devices/virtual/block/vda", "disk", ""},
		{"/vda1", "partition", ""},
	}
	for _, tt := range tests {
		if got := (Uevent{DevPath: tt.devpath, DevType: tt.devtype}).Parent(); got != tt.want {
			t.Errorf("Parent(%s) = %q, want %q", tt.devpath, got, tt.want)
		}
	}
}

func FuzzParseUevent(f *testing.F) {
	f.Add(msg("add@/devices/virtual/block/vda/vda1", "SUBSYSTEM=block", "DEVTYPE=partition", "MAJOR=254", "MINOR=1", "PARTN=1", "PARTNAME=root-a"))
	f.Add(msg("remove@/devices/virtual/block/dm-0", "SUBSYSTEM=block"))
	f.Add([]byte("libudev\x00\xfe\xed\xca\xfe"))
	f.Add([]byte("add@/x\x00\x00\x00=\x00"))
	f.Add(msg("add@/module/crc-t10dif", "SUBSYSTEM=module"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseUevent(b)
		if err != nil {
			return
		}
		if ev.Action == "" || !strings.HasPrefix(ev.DevPath, "/") || ev.Env == nil {
			t.Fatalf("accepted %q as %+v", b, ev)
		}
		if ev.Subsystem == "block" && ev.DevName == "" && ev.Env["DEVNAME"] != "" {
			t.Fatalf("lost DEVNAME of %q", b)
		}
		_ = ev.Parent()
		if name, ok := ModuleAdded(ev); ok && (name == "" || strings.ContainsAny(name, "/-") || ev.Subsystem != "module") {
			t.Fatalf("ModuleAdded(%q) = %q", b, name)
		}
	})
}

// TestModuleAdded: the kernel's announcement that a module's init returned
// names the module, spelt as the plan spells it; nothing else does.
func TestModuleAdded(t *testing.T) {
	for _, tt := range []struct {
		msg  []byte
		want string
	}{
		{msg("add@/module/ahci", "ACTION=add", "DEVPATH=/module/ahci", "SUBSYSTEM=module", "SEQNUM=812"), "ahci"},
		{msg("add@/module/crc-t10dif", "SUBSYSTEM=module"), "crc_t10dif"},
		{msg("remove@/module/ahci", "SUBSYSTEM=module"), ""},
		{msg("add@/module/ahci/holders", "SUBSYSTEM=module"), ""},
		{msg("add@/module", "SUBSYSTEM=module"), ""},
		{msg("add@/devices/virtual/block/ahci", "SUBSYSTEM=block", "DEVNAME=ahci"), ""},
		{msg("add@/module/ahci", "SUBSYSTEM=drivers"), ""},
	} {
		ev, err := ParseUevent(tt.msg)
		if err != nil {
			t.Fatalf("%q: %v", tt.msg, err)
		}
		if got, ok := ModuleAdded(ev); got != tt.want || ok != (tt.want != "") {
			t.Errorf("ModuleAdded(%q) = %q, %v; want %q", tt.msg, got, ok, tt.want)
		}
	}
}

func TestParseUeventDevNameStaysUnderDev(t *testing.T) {
	for _, name := range []string{"../etc/passwd", "/etc/passwd", "a/../../b", "..", "vda/"} {
		if ev, err := ParseUevent(msg("add@/devices/x", "SUBSYSTEM=block", "DEVNAME="+name)); err == nil {
			t.Errorf("DEVNAME=%q accepted as %q", name, ev.DevName)
		}
	}
	if _, err := ParseUevent(msg("add@/", "SUBSYSTEM=block")); err == nil {
		t.Errorf("block uevent for DEVPATH / accepted")
	}
	if ev, err := ParseUevent(msg("add@/devices/x", "SUBSYSTEM=block", "DEVNAME=cciss/c0d0")); err != nil || ev.DevName != "cciss/c0d0" {
		t.Errorf("DEVNAME=cciss/c0d0: %q, %v", ev.DevName, err)
	}
}
