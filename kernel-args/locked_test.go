package kargs

import (
	"reflect"
	"testing"
	"time"
)

func TestParseLocked(t *testing.T) {
	refused := func(opt, val string) Problem { return Problem{opt, val, refusedLocked} }
	runParseCases(t, true, []parseCase{
		{"default emergency becomes reboot", "", nil, nil},
		{"rd.emergency=shell", "rd.emergency=shell", nil, []Problem{refused("rd.emergency", "shell")}},
		{"rd.emergency=poweroff allowed", "rd.emergency=poweroff", func(c *Config) { c.Emergency = EmergencyPoweroff }, nil},
		{"shell keeps previous", "rd.emergency=poweroff rd.emergency=shell", func(c *Config) { c.Emergency = EmergencyPoweroff },
			[]Problem{refused("rd.emergency", "shell")}},
		{"rd.break", "rd.break", nil, []Problem{refused("rd.break", "")}},
		{"rd.break=1", "rd.break=1", nil, []Problem{refused("rd.break", "1")}},
		{"rd.break=0 allowed", "rd.break=0", nil, nil},
		{"verity=off", "verity=off", nil, []Problem{refused("verity", "off")}},
		{"systemd.verity=0", "systemd.verity=0", nil, []Problem{refused("systemd.verity", "0")}},
		{"verity=on allowed", "verity=on", nil, nil},
		{"roothash", "roothash=" + sha256Hex, nil, []Problem{refused("roothash", sha256Hex)}},
		{"roothash empty", "roothash=", nil, nil},
		{"roothash garbage refused first", "roothash=zz", nil, []Problem{refused("roothash", "zz")}},
		{"ignore-corruption", "systemd.verity_root_options=ignore-corruption", nil,
			[]Problem{refused("systemd.verity_root_options", "ignore-corruption")}},
		{"check-at-most-once", "systemd.verity_root_options=panic-on-corruption,check-at-most-once", nil,
			[]Problem{refused("systemd.verity_root_options", "panic-on-corruption,check-at-most-once")}},
		{"panic-on-corruption allowed", "systemd.verity_root_options=panic-on-corruption,ignore-zero-blocks",
			func(c *Config) { c.VerityOptions = []string{PanicOnCorruption, IgnoreZeroBlocks} }, nil},
		{"init", "init=/bin/sh", nil, []Problem{refused("init", "/bin/sh")}},
		{"init unchanged allowed", "init=/sbin/init", nil, nil},
		{"plain root is init's decision", "root=/dev/vda1", func(c *Config) { c.Root = "/dev/vda1" }, nil},
		{"slot and devices allowed", "slot=b overlay=off data=none root-b=/dev/vdb rd.timeout=5 debug",
			func(c *Config) {
				c.Slot, c.Overlay, c.Data, c.RootB, c.Timeout, c.LogLevel = "b", OverlayOff, DataNone, "/dev/vdb", 5*time.Second, Debug
			}, nil},
	})
}

func TestParseLockedPlainRoot(t *testing.T) {
	c, problems := Parse("root=/dev/vda1 roothash="+sha256Hex, Defaults(), true)
	if !c.PlainRoot() || len(problems) != 1 {
		t.Errorf("locked root= with refused roothash=: PlainRoot() = %v, problems %v; want true and 1 problem", c.PlainRoot(), problems)
	}
}

// TestLockDownBase: whatever a hand-made base holds, a locked result keeps
// none of what a locked initramfs forbids, but keeps the base's root hash
// (the initramfs's own, hence trusted).
func TestLockDownBase(t *testing.T) {
	base := Defaults()
	base.Break, base.VerityOff, base.Emergency, base.RootHash = true, true, EmergencyShell, sha256Hex
	base.VerityOptions = []string{IgnoreCorruption, CheckAtMostOnce, IgnoreZeroBlocks}
	got, problems := Parse("", base, true)
	want := base
	want.Break, want.VerityOff, want.Emergency = false, false, EmergencyReboot
	want.VerityOptions = []string{RestartOnCorruption, IgnoreZeroBlocks}
	if !reflect.DeepEqual(got, want) || problems != nil {
		t.Errorf("Parse over a weak base, locked = %+v, %v\nwant %+v", got, problems, want)
	}
	base.VerityOptions, base.Emergency = []string{PanicOnCorruption}, "bogus"
	got, _ = Parse("", base, true)
	if !reflect.DeepEqual(got.VerityOptions, []string{PanicOnCorruption}) || got.Emergency != EmergencyReboot {
		t.Errorf("locked: options %v, emergency %q; want [panic_on_corruption], reboot", got.VerityOptions, got.Emergency)
	}
}

func TestFromBaked(t *testing.T) {
	baked := "slot=b rd.emergency=poweroff rd.timeout=10 init=/lib/systemd/systemd roothash=" + sha256Hex +
		" root=PARTLABEL=img systemd.verity_root_hash=PARTLABEL=img-hash debug"
	for _, locked := range []bool{false, true} {
		base, problems := FromBaked(baked, locked)
		if problems != nil {
			t.Fatalf("FromBaked(locked=%v) problems: %v", locked, problems)
		}
		want := Defaults()
		want.Slot, want.Emergency, want.Timeout, want.Init, want.RootHash = "b", EmergencyPoweroff, 10*time.Second, "/lib/systemd/systemd", sha256Hex
		want.Root, want.VerityHash, want.LogLevel = "PARTLABEL=img", "PARTLABEL=img-hash", Debug
		if !reflect.DeepEqual(base, want) {
			t.Fatalf("FromBaked(locked=%v) = %+v\nwant %+v", locked, base, want)
		}

		// The real command line goes over the baked one.
		got, problems := Parse("slot=auto rd.timeout=60 quiet rd.emergency=reboot", base, locked)
		want.Slot, want.Timeout, want.LogLevel, want.Emergency = "", time.Minute, Quiet, EmergencyReboot
		if !reflect.DeepEqual(got, want) || problems != nil {
			t.Errorf("Parse over baked (locked=%v) = %+v, %v\nwant %+v", locked, got, problems, want)
		}
	}
}

func TestFromBakedLockedOverrides(t *testing.T) {
	base, _ := FromBaked("init=/lib/systemd/systemd roothash="+sha256Hex, true)
	other := "0123456789abcdef0123456789abcdef"
	got, problems := Parse("roothash="+other+" init=/bin/sh roothash="+sha256Hex+" init=/lib/systemd/systemd", base, true)
	if got.RootHash != sha256Hex || got.Init != "/lib/systemd/systemd" {
		t.Errorf("locked real command line changed baked values: roothash %q, init %q", got.RootHash, got.Init)
	}
	// Repeating the baked values is no problem; changing them is.
	checkProblems(t, problems, []Problem{{"roothash", other, refusedLocked}, {"init", "/bin/sh", refusedLocked}})

	got, _ = Parse("roothash="+other+" init=/bin/sh", base, false)
	if got.RootHash != other || got.Init != "/bin/sh" {
		t.Errorf("unlocked: roothash %q, init %q; the command line should win", got.RootHash, got.Init)
	}
}

func TestFromBakedLockedRefusesWeakening(t *testing.T) {
	got, problems := FromBaked("rd.break verity=off rd.emergency=shell systemd.verity_root_options=ignore-corruption", true)
	want, _ := Parse("", Defaults(), true)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromBaked = %+v\nwant %+v", got, want)
	}
	checkProblems(t, problems, []Problem{
		{"rd.break", "", refusedLocked}, {"verity", "off", refusedLocked},
		{"rd.emergency", "shell", refusedLocked}, {"systemd.verity_root_options", "ignore-corruption", refusedLocked},
	})
}
