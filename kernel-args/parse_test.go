// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const sha256Hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// parseCase parses cmdline over Defaults and expects Defaults changed by
// want, and exactly the listed problems (by option, value, reason substring).
type parseCase struct {
	name     string
	cmdline  string
	want     func(*Config)
	problems []Problem
}

func runParseCases(t *testing.T, locked bool, tests []parseCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Defaults()
			if locked {
				want.Emergency = EmergencyReboot
			}
			if tt.want != nil {
				tt.want(&want)
			}
			got, problems := Parse(tt.cmdline, Defaults(), locked)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse(%q, locked=%v)\n got %+v\nwant %+v", tt.cmdline, locked, got, want)
			}
			checkProblems(t, problems, tt.problems)
		})
	}
}

func checkProblems(t *testing.T, got, want []Problem) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("problems = %v, want %d: %v", got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Option != w.Option || g.Value != w.Value || g.HasValue != w.HasValue || !strings.Contains(g.Reason, w.Reason) {
			t.Errorf("problem %d = %#v, want option %q value %q (with '=': %v) reason containing %q", i, g, w.Option, w.Value, w.HasValue, w.Reason)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := Defaults()
	if c.Init != "/sbin/init" || c.Emergency != EmergencyShell || c.Timeout != 30*time.Second ||
		c.LogLevel != Info || c.Slot != "" || c.Overlay != OverlayAuto ||
		!reflect.DeepEqual(c.VerityOptions, []string{RestartOnCorruption}) {
		t.Errorf("Defaults() = %+v", c)
	}
	got, problems := Parse("", Defaults(), false)
	if !reflect.DeepEqual(got, Defaults()) || problems != nil {
		t.Errorf("Parse(\"\") = %+v, %v; want Defaults()", got, problems)
	}
}

func TestParseSlotAndOverlay(t *testing.T) {
	runParseCases(t, false, []parseCase{
		{"slot a", "slot=a", func(c *Config) { c.Slot = "a" }, nil},
		{"slot upper", "slot=B", func(c *Config) { c.Slot = "b" }, nil},
		{"slot auto", "slot=a slot=auto", nil, nil},
		{"slot empty", "slot=b slot=", nil, nil},
		{"slot bad keeps previous", "slot=a slot=c", func(c *Config) { c.Slot = "a" },
			[]Problem{{"slot", "c", "expected a, b", true}}},
		{"slot bare", "slot", nil, []Problem{{"slot", "", "expected a value", false}}},
		{"slot key is case-sensitive", "SLOT=a", nil, nil},
		{"overlay tmpfs", "overlay=tmpfs", func(c *Config) { c.Overlay = OverlayTmpfs }, nil},
		{"overlay persistent", "overlay=persistent", func(c *Config) { c.Overlay = OverlayPersistent }, nil},
		{"overlay off", "overlay=off", func(c *Config) { c.Overlay = OverlayOff }, nil},
		{"overlay auto", "overlay=off overlay=auto", nil, nil},
		{"overlay bad", "overlay=Tmpfs", nil, []Problem{{"overlay", "Tmpfs", "expected tmpfs, persistent, off or auto", true}}},
		{"overlay bare", "overlay", nil, []Problem{{"overlay", "", "expected a value", false}}},
		{"systemd.volatile=overlay", "systemd.volatile=overlay", func(c *Config) { c.Overlay = OverlayTmpfs }, nil},
		{"systemd.volatile other is systemd's", "systemd.volatile=state systemd.volatile", nil, nil},
	})
}

func TestParseVerity(t *testing.T) {
	runParseCases(t, false, []parseCase{
		{"roothash lowercased", "roothash=" + strings.ToUpper(sha256Hex), func(c *Config) { c.RootHash = sha256Hex }, nil},
		{"roothash sha512", "roothash=" + sha256Hex + sha256Hex, func(c *Config) { c.RootHash = sha256Hex + sha256Hex }, nil},
		{"roothash 32 digits", "roothash=" + sha256Hex[:32], func(c *Config) { c.RootHash = sha256Hex[:32] }, nil},
		{"roothash odd", "roothash=" + sha256Hex[:63], nil, []Problem{{"roothash", sha256Hex[:63], "63 hex digits, expected an even number", true}}},
		{"roothash short", "roothash=abcd", nil, []Problem{{"roothash", "abcd", "4 hex digits", true}}},
		{"roothash too long", "roothash=" + strings.Repeat("ab", 65), nil, []Problem{{"roothash", strings.Repeat("ab", 65), "130 hex digits", true}}},
		{"roothash not hex", "roothash=" + sha256Hex[:62] + "zz", nil, []Problem{{"roothash", sha256Hex[:62] + "zz", "'z' at offset 62", true}}},
		{"roothash cleared", "roothash=" + sha256Hex + " roothash=", nil, nil},
		{"roothash bare", "roothash", nil, []Problem{{"roothash", "", "expected a value", false}}},
		{"options dashes", "systemd.verity_root_options=panic-on-corruption,check-at-most-once",
			func(c *Config) { c.VerityOptions = []string{PanicOnCorruption, CheckAtMostOnce} }, nil},
		{"options underscores and case", "systemd.verity-root-options=IGNORE_ZERO_BLOCKS,ignore_corruption",
			func(c *Config) { c.VerityOptions = []string{IgnoreCorruption, IgnoreZeroBlocks} }, nil},
		{"options default mode", "systemd.verity_root_options=ignore-zero-blocks,,ignore-zero-blocks,",
			func(c *Config) { c.VerityOptions = []string{RestartOnCorruption, IgnoreZeroBlocks} }, nil},
		{"options empty restores default", "systemd.verity_root_options=check-at-most-once systemd.verity_root_options=", nil, nil},
		{"options same mode twice", "systemd.verity_root_options=restart-on-corruption,restart_on_corruption", nil, nil},
		{"options unknown", "systemd.verity_root_options=panic-on-corruption,superblock=no", nil,
			[]Problem{{"systemd.verity_root_options", "panic-on-corruption,superblock=no", `unknown option "superblock=no"`, true}}},
		{"options two modes", "systemd.verity_root_options=panic-on-corruption,ignore-corruption", nil,
			[]Problem{{"systemd.verity_root_options", "panic-on-corruption,ignore-corruption", "at most one corruption mode", true}}},
		{"options bare", "systemd.verity_root_options", nil, []Problem{{"systemd.verity_root_options", "", "expected a value", false}}},
		{"verity=off", "verity=off", func(c *Config) { c.VerityOff = true }, nil},
		{"verity=on after off", "verity=off verity=on", nil, nil},
		{"verity=0", "verity=0", func(c *Config) { c.VerityOff = true }, nil},
		{"systemd.verity=no", "systemd.verity=no", func(c *Config) { c.VerityOff = true }, nil},
		{"verity bad", "verity=maybe", nil, []Problem{{"verity", "maybe", "expected on or off", true}}},
	})
}

func TestParseDevices(t *testing.T) {
	runParseCases(t, false, []parseCase{
		{"root path", "root=/dev/vda2", func(c *Config) { c.Root = "/dev/vda2" }, nil},
		{"root PARTUUID lowercased", "root=PARTUUID=ABCDEF01-02", func(c *Config) { c.Root = "PARTUUID=abcdef01-02" }, nil},
		{"root quoted label", `root=LABEL="my root"`, func(c *Config) { c.Root = "LABEL=my root" }, nil},
		{"systemd data", "systemd.verity_root_data=PARTLABEL=img", func(c *Config) { c.Root = "PARTLABEL=img" }, nil},
		{"root and systemd data: last wins", "root=/dev/vda1 systemd.verity_root_data=/dev/vda2", func(c *Config) { c.Root = "/dev/vda2" }, nil},
		{"systemd hash", "systemd.verity_root_hash=UUID=AB-CD", func(c *Config) { c.VerityHash = "UUID=ab-cd" }, nil},
		{"root not devspec", "root=/dev/vda1 root=gpt-auto", func(c *Config) { c.Root = "/dev/vda1" },
			[]Problem{{"root", "gpt-auto", "not a DEVSPEC", true}}},
		{"root major:minor refused", "root=801", nil, []Problem{{"root", "801", "not a DEVSPEC", true}}},
		{"root bare", "root", nil, []Problem{{"root", "", "expected a value", false}}},
		{"root empty restores default", "root=/dev/vda1 root=", nil, nil},
		{"data", "data=LABEL=data", func(c *Config) { c.Data = "LABEL=data" }, nil},
		{"data none", "data=none", func(c *Config) { c.Data = DataNone }, nil},
		{"none only for data", "bootstate=none", nil, []Problem{{"bootstate", "none", "not a DEVSPEC", true}}},
		{"bootstate", "bootstate=/dev/vda5", func(c *Config) { c.BootState = "/dev/vda5" }, nil},
		{"slot devices dashes", "root-a=/dev/vda1 root-b=/dev/vda2 verity-a=/dev/vda3 verity-b=/dev/vda4",
			func(c *Config) {
				c.RootA, c.RootB, c.VerityA, c.VerityB = "/dev/vda1", "/dev/vda2", "/dev/vda3", "/dev/vda4"
			}, nil},
		{"slot devices underscores", "root_a=PARTLABEL=x root_b=PARTLABEL=y verity_a=PARTLABEL=z verity_b=PARTLABEL=w",
			func(c *Config) {
				c.RootA, c.RootB, c.VerityA, c.VerityB = "PARTLABEL=x", "PARTLABEL=y", "PARTLABEL=z", "PARTLABEL=w"
			}, nil},
		{"slot device bad", "verity-b=/etc/x", nil, []Problem{{"verity-b", "/etc/x", "a path must be /dev/NAME", true}}},
		{"rootfstype", "rootfstype=ext4", func(c *Config) { c.RootFSType = "ext4" }, nil},
		{"rootfstype dotted", "rootfstype=fuse.sshfs", func(c *Config) { c.RootFSType = "fuse.sshfs" }, nil},
		{"rootfstype bad", "rootfstype=ext4;rm", nil, []Problem{{"rootfstype", "ext4;rm", "expected a filesystem type", true}}},
		{"rootflags", "rootflags=subvol=@,compress=zstd", func(c *Config) { c.RootFlags = "subvol=@,compress=zstd" }, nil},
		{"rootflags control", "rootflags=a\x01", nil, []Problem{{"rootflags", "a\x01", "control characters", true}}},
	})
}

func TestParseInitAndEmergency(t *testing.T) {
	runParseCases(t, false, []parseCase{
		{"init", "init=/lib/systemd/systemd", func(c *Config) { c.Init = "/lib/systemd/systemd" }, nil},
		{"init relative", "init=bash", nil, []Problem{{"init", "bash", "expected an absolute path", true}}},
		{"init bare", "init", nil, []Problem{{"init", "", "expected an absolute path", false}}},
		{"rd.break", "rd.break", func(c *Config) { c.Break = true }, nil},
		{"rd.break=1", "rd.break=1", func(c *Config) { c.Break = true }, nil},
		{"rd.break=yes", "rd.break=yes", func(c *Config) { c.Break = true }, nil},
		{"rd.break=true", "rd.break=TRUE", func(c *Config) { c.Break = true }, nil},
		{"rd.break=0", "rd.break rd.break=0", nil, nil},
		{"rd.break bad", "rd.break=pre-mount", nil, []Problem{{"rd.break", "pre-mount", "expected no value, or a boolean", true}}},
		{"emergency reboot", "rd.emergency=reboot", func(c *Config) { c.Emergency = EmergencyReboot }, nil},
		{"emergency poweroff", "rd.emergency=poweroff", func(c *Config) { c.Emergency = EmergencyPoweroff }, nil},
		{"emergency shell", "rd.emergency=reboot rd.emergency=shell", nil, nil},
		{"emergency bad", "rd.emergency=halt", nil, []Problem{{"rd.emergency", "halt", "expected shell, reboot or poweroff", true}}},
		{"emergency timeout", "rd.emergency.timeout=120", func(c *Config) { c.EmergencyTimeout = 2 * time.Minute }, nil},
		{"emergency timeout 0", "rd.emergency.timeout=5 rd.emergency.timeout=0", nil, nil},
		{"emergency timeout bad", "rd.emergency.timeout=-1", nil, []Problem{{"rd.emergency.timeout", "-1", "expected whole seconds from 0 to 604800", true}}},
		{"emergency timeout dash is another key", "rd.emergency-timeout=5", nil, nil},
		{"timeout", "rd.timeout=90", func(c *Config) { c.Timeout = 90 * time.Second }, nil},
		{"timeout 0 refused", "rd.timeout=0", nil, []Problem{{"rd.timeout", "0", "from 1 to", true}}},
		{"luks timeout", "rd.luks.timeout=90", func(c *Config) { c.LUKSTimeout = 90 * time.Second }, nil},
		{"luks timeout bad", "rd.luks.timeout=1m", nil, []Problem{{"rd.luks.timeout", "1m", "expected whole seconds from 0 to 604800", true}}},
		{"timeout fraction", "rd.timeout=2.5", nil, []Problem{{"rd.timeout", "2.5", "whole seconds", true}}},
		{"timeout huge", "rd.timeout=99999999999999999999", nil, []Problem{{"rd.timeout", "99999999999999999999", "whole seconds", true}}},
		{"timeout over a week", "rd.timeout=604801", nil, []Problem{{"rd.timeout", "604801", "whole seconds", true}}},
		{"timeout bare", "rd.timeout", nil, []Problem{{"rd.timeout", "", "whole seconds", false}}},
		{"quiet", "quiet", func(c *Config) { c.LogLevel = Quiet }, nil},
		{"debug", "debug", func(c *Config) { c.LogLevel = Debug }, nil},
		{"rd.debug", "rd.debug", func(c *Config) { c.LogLevel = Debug }, nil},
		{"quiet then debug", "quiet debug", func(c *Config) { c.LogLevel = Debug }, nil},
		{"debug then quiet", "rd.debug quiet", func(c *Config) { c.LogLevel = Quiet }, nil},
		{"debug=0 undoes debug", "debug rd.debug=0", nil, nil},
		{"quiet=0 leaves debug", "debug quiet=0", func(c *Config) { c.LogLevel = Debug }, nil},
		{"debug bad", "debug=verbose", nil, []Problem{{"debug", "verbose", "expected no value", true}}},
	})
}

func TestParseGeneral(t *testing.T) {
	runParseCases(t, false, []parseCase{
		{"unknown ignored", "console=ttyS0 ro splash systemd.unit=rescue.target foo=bar", nil, nil},
		{"repeats: last wins", "slot=a overlay=off slot=b overlay=tmpfs", func(c *Config) { c.Slot, c.Overlay = "b", OverlayTmpfs }, nil},
		{"after -- belongs to init", "slot=a -- slot=b rd.break", func(c *Config) { c.Slot = "a" }, nil},
		{"quoted -- ends them too", `slot=a "--" slot=b`, func(c *Config) { c.Slot = "a" }, nil},
		// The kernel reads -""- as a word of its own and goes on; so does
		// keel (it stopped there, found by a hunting helper).
		{"-\"\"- is not --", `slot=a -""- slot=b`, func(c *Config) { c.Slot = "b" }, nil},
		{"-- with value is an option", "--=x slot=b", func(c *Config) { c.Slot = "b" }, nil},
		{"quoted whole word", `"rd.emergency=reboot" "slot=b"`, func(c *Config) { c.Emergency, c.Slot = EmergencyReboot, "b" }, nil},
		{"trailing newline", "slot=a\n", func(c *Config) { c.Slot = "a" }, nil},
		{"garbage", "= == \"\" \"=\" \x00\xff=\xfe \"unbalanced", nil, nil},
	})
}

// TestParseKiosk is the single-image boot chain of docs/cmdline.md (root=, roothash=, systemd.verity_root_hash=).
func TestParseKiosk(t *testing.T) {
	line := "BOOT_IMAGE=/vmlinuz console=ttyS0 root=PARTLABEL=img roothash=" + sha256Hex +
		" systemd.verity_root_hash=PARTLABEL=img-verity systemd.verity_root_options=panic-on-corruption quiet"
	got, problems := Parse(line, Defaults(), false)
	want := Defaults()
	want.Root, want.RootHash, want.VerityHash = "PARTLABEL=img", sha256Hex, "PARTLABEL=img-verity"
	want.VerityOptions, want.LogLevel = []string{PanicOnCorruption}, Quiet
	if !reflect.DeepEqual(got, want) || problems != nil {
		t.Errorf("Parse = %+v, %v\nwant %+v", got, problems, want)
	}
	if got.PlainRoot() {
		t.Error("PlainRoot() = true for a verity root")
	}
}

func TestPlainRoot(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"", false},
		{"root=/dev/vda1", true},
		{"root=/dev/vda1 roothash=" + sha256Hex, false},
		{"root=/dev/vda1 systemd.verity_root_hash=/dev/vda2", false},
		{"root-a=/dev/vda1", false},
	}
	for _, tt := range tests {
		c, _ := Parse(tt.line, Defaults(), false)
		if got := c.PlainRoot(); got != tt.want {
			t.Errorf("Parse(%q).PlainRoot() = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestSlotOverrides(t *testing.T) {
	c, _ := Parse("root-a=/dev/a1 root-b=/dev/b1 verity-a=/dev/a2 verity-b=/dev/b2", Defaults(), false)
	got := []string{c.SlotRoot("a"), c.SlotRoot("b"), c.SlotVerity("a"), c.SlotVerity("b"), c.SlotRoot("c"), c.SlotVerity("")}
	want := []string{"/dev/a1", "/dev/b1", "/dev/a2", "/dev/b2", "", ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("slot overrides = %q, want %q", got, want)
	}
}

func TestParseDoesNotAliasBase(t *testing.T) {
	base := Defaults()
	c, _ := Parse("", base, false)
	c.VerityOptions[0] = "changed"
	if base.VerityOptions[0] != RestartOnCorruption {
		t.Error("Parse returned a config sharing VerityOptions with base")
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{"slot", "c", "expected a, b", true}, `slot="c": expected a, b`},
		{Problem{"rd.break", "", refusedLocked, false}, "rd.break: refused: initramfs is locked"},
		{Problem{"slot", "", "expected a value: a, b or auto", true}, `slot="": expected a value: a, b or auto`},
		{Problem{"root", "\xff\n", "x", true}, `root="\xff\n": x`},
		{Problem{"root", strings.Repeat("é", 60), "x", true}, `root="` + strings.Repeat("é", 40) + `…": x`},
	}
	for _, tt := range tests {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if tt.p.String() != tt.p.Error() {
			t.Errorf("String() != Error() for %#v", tt.p)
		}
	}
}

func TestLogLevelString(t *testing.T) {
	for l, want := range map[LogLevel]string{Quiet: "quiet", Info: "info", Debug: "debug", 7: "unknown"} {
		if got := l.String(); got != want {
			t.Errorf("LogLevel(%d).String() = %q, want %q", l, got, want)
		}
	}
}

func TestParseHuge(t *testing.T) {
	// Everything after the unbalanced quote is one unknown word.
	line := strings.Repeat("slot=c rd.timeout=0 ", 50000) + `slot=b slot=x root=/etc "unbalanced ` +
		strings.Repeat("\xff\x00=", 100000)
	c, problems := Parse(line, Defaults(), false)
	if c.Slot != "b" || len(problems) != 100002 {
		t.Errorf("huge line: slot %q, %d problems; want b, 100002", c.Slot, len(problems))
	}
}

// TestWithoutMode: the options of a mapping on which a corrupt block is an
// I/O error (the /etc merge's old image): every corruption mode gone, the
// rest kept, never nil (nil means the default, restart_on_corruption).
func TestWithoutMode(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, []string{}},
		{[]string{RestartOnCorruption}, []string{}},
		{[]string{PanicOnCorruption, IgnoreZeroBlocks, "fec_roots 2"}, []string{IgnoreZeroBlocks, "fec_roots 2"}},
		{[]string{IgnoreCorruption, CheckAtMostOnce}, []string{CheckAtMostOnce}},
	} {
		got := WithoutMode(c.in)
		if got == nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("WithoutMode(%q) = %#v, want %q", c.in, got, c.want)
		}
	}
}

// TestShownWord: a word of the command line is named as it is when short
// and printable, else quoted and cut.
func TestShownWord(t *testing.T) {
	long := strings.Repeat("x", 100)
	for in, want := range map[string]string{
		"systemd.run=/bin/sh":      "systemd.run=/bin/sh",
		`"systemd.run=/bin/sh -c"`: `"systemd.run=/bin/sh -c"`,
		"systemd.run=\x1b[2J":      `"systemd.run=\x1b[2J"`,
		"a\nb":                     `"a\nb"`,
		long:                       `"` + long[:80] + `…"`,
		"voilà":                    `"voilà"`,
	} {
		if got := ShownWord(in); got != want {
			t.Errorf("ShownWord(%q) = %s, want %s", in, got, want)
		}
	}
}
