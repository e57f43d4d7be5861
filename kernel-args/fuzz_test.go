// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	dspec "github.com/keel-boot/keel/devspec"
)

var fuzzSeeds = []string{
	"",
	"quiet slot=A overlay=persistent rd.timeout=5 rd.emergency=poweroff rd.emergency.timeout=30",
	"root=PARTLABEL=img roothash=" + sha256Hex + " systemd.verity_root_hash=PARTLABEL=h systemd.verity_root_options=panic-on-corruption",
	`root=LABEL="my disk" "init=/sbin/my init" rd.break verity=off data=none -- slot=b`,
	"root-a=/dev/vda1 verity_b=UUID=AB-CD bootstate=PARTUUID=0123 rootfstype=ext4 rootflags=ro,noatime",
	"systemd.volatile=overlay systemd.verity=no rd.debug=0 debug quiet=1 init=/bin/sh",
	"= == \"\" \"=\" \x00\xff=\xfe \"unbalanced",
	"rd.watchdog=30 rd.watchdog=off rd.watchdog=3601 rd.watchdog rd.watchdog=0",
	"roothash=zz systemd.verity_root_options=ignore-corruption,check-at-most-once,bogus",
}

func FuzzSplit(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		params := Split(line)
		for _, p := range params {
			if strings.ContainsAny(p.Key, `="`) || strings.Contains(p.Value, `"`) {
				t.Fatalf("Split(%q): %#v keeps a quote or '=' in the key", line, p)
			}
			if !p.HasValue && p.Value != "" {
				t.Fatalf("Split(%q): %#v has a value but HasValue is false", line, p)
			}
			if p.Key == "" && !p.HasValue {
				t.Fatalf("Split(%q): empty word kept", line)
			}
		}
		if again := Split(Join(params)); !reflect.DeepEqual(again, params) {
			t.Fatalf("Split(Join(Split(%q))) = %#v, want %#v", line, again, params)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, line string, locked bool) {
		c, problems := Parse(line, Defaults(), locked)
		checkInvariants(t, line, c, locked)
		for _, p := range problems {
			if p.Option == "" || p.Reason == "" || p.Error() == "" {
				t.Fatalf("Parse(%q): incomplete problem %#v", line, p)
			}
			// The message says whether the option was written with '=':
			// "slot=" and a bare "slot" read differently.
			if strings.HasPrefix(p.Error(), shown(p.Option)+"=") != p.HasValue {
				t.Fatalf("Parse(%q): problem %q hides whether %q had a value (%#v)", line, p.Error(), p.Option, p)
			}
		}
		// Quoting and spacing do not matter, only the words do: those of
		// the options, which end at the kernel's "--" (KernelOptions).
		// Split's words are not the kernel's (the byte 0xA0), so the
		// line split and joined whole may end them elsewhere.
		if c2, _ := Parse(Join(Split(KernelOptions(line))), Defaults(), locked); !reflect.DeepEqual(c, c2) {
			t.Fatalf("Parse(%q) differs after Join(Split(KernelOptions())):\n%+v\n%+v", line, c, c2)
		}
		// Last wins: applying the same line again changes nothing.
		if c3, _ := Parse(line, c, locked); !reflect.DeepEqual(c, c3) {
			t.Fatalf("Parse(%q) is not idempotent:\n%+v\n%+v", line, c, c3)
		}
	})
}

func checkInvariants(t *testing.T, line string, c Config, locked bool) {
	t.Helper()
	fail := func(what string) { t.Fatalf("Parse(%q, locked=%v): %s: %+v", line, locked, what, c) }
	if c.Slot != "" && c.Slot != "a" && c.Slot != "b" {
		fail("slot")
	}
	if !validEmergency(c.Emergency) {
		fail("emergency")
	}
	switch c.Overlay {
	case OverlayAuto, OverlayTmpfs, OverlayPersistent, OverlayOff:
	default:
		fail("overlay")
	}
	if c.LogLevel < Quiet || c.LogLevel > Debug {
		fail("log level")
	}
	if c.Timeout < time.Second || c.Timeout > maxSeconds*time.Second ||
		c.EmergencyTimeout < 0 || c.EmergencyTimeout > maxSeconds*time.Second {
		fail("timeouts")
	}
	if c.Watchdog < 0 || c.Watchdog > MaxWatchdog || c.Watchdog%time.Second != 0 {
		fail("watchdog")
	}
	if c.RootHash != "" && (checkRootHash(c.RootHash) != "" || strings.ToLower(c.RootHash) != c.RootHash) {
		fail("root hash")
	}
	if len(c.VerityOptions) == 0 || !isMode(c.VerityOptions[0]) {
		fail("verity options: no corruption mode first")
	}
	for i, o := range c.VerityOptions {
		if (i > 0 && isMode(o)) || (locked && weakens(o)) {
			fail("verity options")
		}
	}
	for _, d := range []string{c.Root, c.VerityHash, c.BootState, c.RootA, c.RootB, c.VerityA, c.VerityB, c.Data} {
		if spec, err := dspec.Parse(d); d != "" && d != DataNone && (err != nil || spec.String() != d) {
			fail("device " + d)
		}
	}
	if !strings.HasPrefix(c.Init, "/") {
		fail("init")
	}
	if locked && (c.Break || c.VerityOff || c.RootHash != "" || c.Emergency == EmergencyShell || c.Init != "/sbin/init") {
		fail("locked")
	}
	if locked && (c.Root != "" || c.VerityHash != "" || c.BootState != "" || c.RootA != "" || c.RootB != "" ||
		c.VerityA != "" || c.VerityB != "" || (c.Data != "" && c.Data != DataNone) || c.Timeout < Defaults().Timeout ||
		c.Watchdog != 0) {
		fail("locked: a device or the device wait changed")
	}
}

// FuzzParseLockedOverBaked: whatever the baked and the real line hold, a
// locked result keeps the baked devices (data= may only become none), init,
// root hash and at least the baked device wait, and every refusal says so.
func FuzzParseLockedOverBaked(f *testing.F) {
	for i, s := range fuzzSeeds {
		f.Add(fuzzSeeds[(i+3)%len(fuzzSeeds)], s)
	}
	f.Add("data=PARTLABEL=d root=/dev/vda2 roothash="+sha256Hex+" rd.timeout=9", "data=/dev/sdb1 root=/dev/sdb2 data=none rd.timeout=8 rd.timeout=90")
	f.Add("rd.watchdog=60", "rd.watchdog=0 rd.watchdog=off rd.watchdog=59 rd.watchdog=60")
	f.Add("systemd.verity_root_options=panic-on-corruption", "systemd.verity_root_options=restart-on-corruption,ignore-corruption systemd.verity-root-options=check_at_most_once")
	f.Fuzz(func(t *testing.T, baked, line string) {
		base, _ := FromBaked(baked, true)
		for _, d := range []string{base.Root, base.VerityHash, base.BootState, base.RootA, base.RootB, base.VerityA, base.VerityB, base.Data} {
			if strings.HasPrefix(d, "/dev/") {
				t.Fatalf("baked %q, locked: the device %q is named by its kernel name, which another disk can take", baked, d)
			}
		}
		c, problems := Parse(line, base, true)
		kept := func(what, got, want string) {
			if got != want {
				t.Fatalf("baked %q, line %q: %s = %q, want the baked %q", baked, line, what, got, want)
			}
		}
		kept("root", c.Root, base.Root)
		kept("verity hash", c.VerityHash, base.VerityHash)
		kept("bootstate", c.BootState, base.BootState)
		kept("root-a", c.RootA, base.RootA)
		kept("root-b", c.RootB, base.RootB)
		kept("verity-a", c.VerityA, base.VerityA)
		kept("verity-b", c.VerityB, base.VerityB)
		kept("init", c.Init, base.Init)
		kept("roothash", c.RootHash, base.RootHash)
		kept("watchdog", WatchdogString(c.Watchdog), WatchdogString(base.Watchdog))
		if c.Data != base.Data && c.Data != DataNone {
			t.Fatalf("baked %q, line %q: data = %q, want the baked %q or none", baked, line, c.Data, base.Data)
		}
		if c.Timeout < base.Timeout || c.Break || c.VerityOff || c.Emergency == EmergencyShell {
			t.Fatalf("baked %q, line %q: weakened: %+v", baked, line, c)
		}
		// dm-verity's options: a baked panic stays a panic, and nothing
		// the builder did not bake turns a check off or makes it once.
		if len(base.VerityOptions) > 0 && base.VerityOptions[0] == PanicOnCorruption && (len(c.VerityOptions) == 0 || c.VerityOptions[0] != PanicOnCorruption) {
			t.Fatalf("baked %q, line %q: verity options %q, want the baked panic kept", baked, line, c.VerityOptions)
		}
		for _, o := range c.VerityOptions {
			if weakens(o) && !slices.Contains(base.VerityOptions, o) {
				t.Fatalf("baked %q, line %q: verity option %s, not baked", baked, line, o)
			}
		}
		for _, p := range problems {
			if p.Refused() && !strings.Contains(p.Error(), "locked") || p.Written() == "" {
				t.Fatalf("baked %q, line %q: problem %#v", baked, line, p)
			}
		}
	})
}
