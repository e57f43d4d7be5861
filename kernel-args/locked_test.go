// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLocked(t *testing.T) {
	refused := func(opt, val string) Problem { return Problem{opt, val, refusedLocked, val != ""} }
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
		{"what stays allowed", "slot=b overlay=off data=none rd.timeout=60 rd.emergency.timeout=5 debug rootfstype=ext4 rootflags=ro",
			func(c *Config) {
				c.Slot, c.Overlay, c.Data, c.Timeout, c.LogLevel = "b", OverlayOff, DataNone, time.Minute, Debug
				c.EmergencyTimeout, c.RootFSType, c.RootFlags = 5*time.Second, "ext4", "ro"
			}, nil},
	})
}

// TestParseLockedDevices: every spelling of every device option is refused
// on a locked initramfs unless it names the baked value, and the refusal
// says what the baked value is.
func TestParseLockedDevices(t *testing.T) {
	lockedDev := func(opt, val, baked string) Problem {
		return Problem{opt, val, refusedLocked + ", and the baked default is " + baked, val != ""}
	}
	runParseCases(t, true, []parseCase{
		{"data", "data=/dev/sdb1", nil, []Problem{lockedDev("data", "/dev/sdb1", "PARTLABEL=data")}},
		{"data label", "data=PARTLABEL=data", nil, []Problem{lockedDev("data", "PARTLABEL=data", "PARTLABEL=data")}},
		{"data garbage", "data=sdb1", nil, []Problem{lockedDev("data", "sdb1", "PARTLABEL=data")}},
		{"data bare", "data", nil, []Problem{lockedDev("data", "", "PARTLABEL=data")}},
		{"data none allowed", "data=none", func(c *Config) { c.Data = DataNone }, nil},
		{"data none then default", "data=none data=", nil, nil},
		{"bootstate", "bootstate=PARTLABEL=data", nil, []Problem{lockedDev("bootstate", "PARTLABEL=data", "PARTLABEL=bootstate")}},
		{"root", "root=/dev/vda1", nil, []Problem{lockedDev("root", "/dev/vda1", "unset (A/B slots)")}},
		{"verity_root_data", "systemd.verity_root_data=UUID=ab", nil,
			[]Problem{lockedDev("systemd.verity_root_data", "UUID=ab", "unset (A/B slots)")}},
		{"verity-root-hash", "systemd.verity-root-hash=/dev/vdb2", nil,
			[]Problem{lockedDev("systemd.verity-root-hash", "/dev/vdb2", "unset")}},
		{"root-a", "root-a=/dev/vdb1", nil, []Problem{lockedDev("root-a", "/dev/vdb1", "PARTLABEL=root-a")}},
		{"root_b", "root_b=LABEL=x", nil, []Problem{lockedDev("root_b", "LABEL=x", "PARTLABEL=root-b")}},
		{"verity-a", "verity-a=PARTUUID=0a", nil, []Problem{lockedDev("verity-a", "PARTUUID=0a", "PARTLABEL=verity-a")}},
		{"verity_b", "verity_b=/dev/vdb2", nil, []Problem{lockedDev("verity_b", "/dev/vdb2", "PARTLABEL=verity-b")}},
		{"empty restores nothing", "root-a= verity-b=", nil, nil},
		{"rd.timeout shorter", "rd.timeout=5", nil, []Problem{{"rd.timeout", "5", refusedLocked + ", and the baked device wait is 30 s", true}}},
		{"rd.timeout garbage", "rd.timeout=x", nil, []Problem{{"rd.timeout", "x", "expected whole seconds", true}}},
		{"rd.timeout same", "rd.timeout=30", nil, nil},
	})
}

// TestParseLockedOverBaked: devices baked with mkinitrd --cmdline may be
// named again, nothing else; unlocked, the command line wins.
func TestParseLockedOverBaked(t *testing.T) {
	const rootA = "PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4"
	base, problems := FromBaked("data=PARTLABEL=mydata root-a="+rootA+" rd.timeout=10 root=PARTLABEL=img systemd.verity_root_hash=PARTLABEL=img-hash", true)
	if problems != nil || base.Data != "PARTLABEL=mydata" || base.RootA != rootA || base.Timeout != 10*time.Second {
		t.Fatalf("FromBaked locked = %+v, %v: the baked line may set devices", base, problems)
	}
	line := "data=PARTLABEL=mydata data=/dev/sdb1 root-a=" + rootA + " root-a=/dev/sdb2 rd.timeout=9 rd.timeout=12 " +
		"systemd.verity_root_data=PARTLABEL=img root=/dev/sdb3 systemd.verity_root_hash=PARTLABEL=img-hash data= data=none"
	got, problems := Parse(line, base, true)
	want := base
	want.Data, want.Timeout = DataNone, 12*time.Second
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse locked over baked = %+v\nwant %+v", got, want)
	}
	checkProblems(t, problems, []Problem{
		{"data", "/dev/sdb1", "the baked default is PARTLABEL=mydata", true},
		{"root-a", "/dev/sdb2", "the baked default is " + rootA, true},
		{"rd.timeout", "9", "the baked device wait is 10 s", true},
		{"root", "/dev/sdb3", "the baked default is PARTLABEL=img", true},
		{"data", "", "the baked default is PARTLABEL=mydata", true}, // data= (empty)
	})
	for _, p := range problems {
		if !p.Refused() {
			t.Errorf("%v: Refused() = false", p)
		}
	}
	got, problems = Parse(line, base, false)
	if problems != nil || got.Data != DataNone || got.RootA != "/dev/sdb2" || got.Root != "/dev/sdb3" || got.Timeout != 12*time.Second {
		t.Errorf("unlocked: %+v, %v; the command line should win", got, problems)
	}
}

// TestBakedKernelNamesLocked: a locked initramfs's own line may not name a
// device by its kernel name, which a stick or a card found first takes;
// the option is ignored, naming why, and the default stays. Unlocked it is
// the builder's choice.
func TestBakedKernelNamesLocked(t *testing.T) {
	const line = "root-a=/dev/mmcblk0p1 verity-a=PARTLABEL=va bootstate=/dev/sda5 data=/dev/nvme0n1p6 " +
		"root=/dev/vda2 systemd.verity_root_hash=/dev/vda3 roothash=" + sha256Hex
	base, problems := FromBaked(line, true)
	want := Defaults()
	want.VerityA, want.RootHash, want.Emergency = "PARTLABEL=va", sha256Hex, EmergencyReboot
	if !reflect.DeepEqual(base, want) {
		t.Errorf("FromBaked(locked) = %+v\nwant %+v", base, want)
	}
	var opts []string
	for _, p := range problems {
		if !p.Refused() || !strings.Contains(p.Error(), "kernel device name follows the order disks are found in") {
			t.Errorf("%v: want a refusal that says why", p)
		}
		opts = append(opts, p.Written())
	}
	if w := []string{"root-a=/dev/mmcblk0p1", "bootstate=/dev/sda5", "data=/dev/nvme0n1p6", "root=/dev/vda2", "systemd.verity_root_hash=/dev/vda3"}; !reflect.DeepEqual(opts, w) {
		t.Errorf("refused %q, want %q", opts, w)
	}
	if unlocked, problems := FromBaked(line, false); problems != nil || unlocked.RootA != "/dev/mmcblk0p1" || unlocked.Data != "/dev/nvme0n1p6" {
		t.Errorf("FromBaked(unlocked) = %+v, %v: the builder's names stand", unlocked, problems)
	}
}

func TestProblemRefusedWritten(t *testing.T) {
	_, problems := Parse("rd.break data=/dev/sdb1 slot=c", Defaults(), true)
	if len(problems) != 3 || !problems[0].Refused() || !problems[1].Refused() || problems[2].Refused() {
		t.Fatalf("problems %v: want rd.break and data= refused, slot=c a bad value", problems)
	}
	for i, want := range []string{"rd.break", "data=/dev/sdb1", "slot=c"} {
		if got := problems[i].Written(); got != want {
			t.Errorf("Written() = %q, want %q", got, want)
		}
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
	checkProblems(t, problems, []Problem{{"roothash", other, refusedLocked, true}, {"init", "/bin/sh", refusedLocked, true}})

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
		{"rd.break", "", refusedLocked, false}, {"verity", "off", refusedLocked, true},
		{"rd.emergency", "shell", refusedLocked, true}, {"systemd.verity_root_options", "ignore-corruption", refusedLocked, true},
	})
}

// TestLockedVerityModeKept: on a locked initramfs built to panic on
// corruption, the command line cannot lower that to a restart: a value
// naming restart, or an empty one, is refused; one naming no mode keeps
// panic with its flags. It replaced the baked list with restart (found by
// a hunting helper). Unlocked, the command line wins.
func TestLockedVerityModeKept(t *testing.T) {
	const opt = "systemd.verity_root_options"
	for _, c := range []struct {
		line     string
		locked   bool
		want     []string
		problems []Problem
	}{
		{opt + "=restart-on-corruption", true, []string{PanicOnCorruption},
			[]Problem{{opt, "restart-on-corruption", refusedLocked + " (this initramfs panics on corruption: restart-on-corruption is weaker)", true}}},
		{opt + "=", true, []string{PanicOnCorruption},
			[]Problem{{opt, "", refusedLocked + " (this initramfs panics on corruption: restart-on-corruption is weaker)", true}}},
		{opt + "=ignore-zero-blocks", true, []string{PanicOnCorruption, IgnoreZeroBlocks}, nil},
		{opt + "=panic-on-corruption,ignore-zero-blocks", true, []string{PanicOnCorruption, IgnoreZeroBlocks}, nil},
		{opt + "=restart-on-corruption", false, []string{RestartOnCorruption}, nil},
		{opt + "=", false, []string{RestartOnCorruption}, nil},
	} {
		base, problems := FromBaked(opt+"=panic-on-corruption", c.locked)
		if len(problems) != 0 {
			t.Fatal(problems)
		}
		got, problems := Parse(c.line, base, c.locked)
		if !reflect.DeepEqual(got.VerityOptions, c.want) || !reflect.DeepEqual(problems, c.problems) {
			t.Errorf("%q (locked %v): %v, %v; want %v, %v", c.line, c.locked, got.VerityOptions, problems, c.want, c.problems)
		}
	}
	// Locked over keel's default (restart), a restart stays allowed.
	if got, problems := Parse(opt+"=restart-on-corruption", Defaults(), true); len(problems) != 0 || got.VerityOptions[0] != RestartOnCorruption {
		t.Errorf("locked, default base: %v, %v", got.VerityOptions, problems)
	}
}
