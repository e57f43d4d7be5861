// SPDX-License-Identifier: Apache-2.0

package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	kargs "github.com/keel-boot/keel/kernel-args"
)

func TestBakeWatchdog(t *testing.T) {
	tests := []struct {
		cmdline string
		seconds int
		want    string
		err     string
	}{
		{"", 0, "", ""},
		{"quiet", 0, "quiet", ""},
		{"", 30, "rd.watchdog=30", ""},
		{"quiet rd.timeout=60", 3600, "quiet rd.timeout=60 rd.watchdog=3600", ""},
		{"", 3601, "", "--watchdog 3601: expected whole seconds from 1 to 3600 (0 for none)"},
		{"", -1, "", "--watchdog -1: expected whole seconds from 1 to 3600"},
		{"rd.watchdog=10", 30, "", "--watchdog 30 and --cmdline rd.watchdog=10: expected the watchdog in one of them"},
		{"rd.watchdog=10", 0, "rd.watchdog=10", ""},
		{"quiet -- rd.watchdog=1 x", 30, "quiet rd.watchdog=30 -- rd.watchdog=1 x", ""},
		{`"unbalanced`, 30, `unbalanced rd.watchdog=30`, ""},
	}
	for _, tt := range tests {
		got, err := bakeWatchdog(tt.cmdline, tt.seconds)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("bakeWatchdog(%q, %d) = %q, %v; want error %q", tt.cmdline, tt.seconds, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("bakeWatchdog(%q, %d) = %q, %v; want %q", tt.cmdline, tt.seconds, got, err, tt.want)
		}
	}
}

// TestWatchdogFlagLocked: --watchdog with --locked bakes a watchdog the
// real command line cannot turn off.
func TestWatchdogFlagLocked(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	if err := os.WriteFile(init, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--out", "x.img", "--kver", "6.1", "--init", init, "--locked",
		"--cmdline", "roothash=" + strings.Repeat("ab", 32), "--watchdog", "45"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cmdline != "roothash="+strings.Repeat("ab", 32)+" rd.watchdog=45" {
		t.Fatalf("baked cmdline %q", o.cmdline)
	}
	base, problems := kargs.FromBaked(o.cmdline, true)
	if problems != nil || base.Watchdog != 45*time.Second {
		t.Fatalf("FromBaked(%q) = %v, %v", o.cmdline, base.Watchdog, problems)
	}
	got, problems := kargs.Parse("rd.watchdog=0", base, true)
	if got.Watchdog != 45*time.Second || len(problems) != 1 || !problems[0].Refused() {
		t.Errorf("locked image, rd.watchdog=0: watchdog %v, problems %v; want 45 s kept and the option refused", got.Watchdog, problems)
	}
	if _, err := parseFlags([]string{"--out", "x.img", "--kver", "6.1", "--init", init, "--watchdog", "x"}, io.Discard); err == nil {
		t.Error("--watchdog x accepted")
	}
}

// FuzzBakeWatchdog: what bakeWatchdog accepts, the init reads back as the
// same watchdog, and the rest of the baked line means what it meant.
func FuzzBakeWatchdog(f *testing.F) {
	f.Add("quiet rd.timeout=60", 30)
	f.Add(`"rd.watchdog=5" data=none`, 30)
	f.Add("rd.watchdog=oops", 0)
	f.Fuzz(func(t *testing.T, cmdline string, seconds int) {
		got, err := bakeWatchdog(cmdline, seconds)
		if err != nil {
			return
		}
		before, _ := kargs.FromBaked(cmdline, false)
		after, _ := kargs.FromBaked(got, false)
		if seconds != 0 {
			if after.Watchdog != time.Duration(seconds)*time.Second {
				t.Fatalf("bakeWatchdog(%q, %d) = %q: the init reads a %v watchdog", cmdline, seconds, got, after.Watchdog)
			}
			after.Watchdog = before.Watchdog
		}
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("bakeWatchdog(%q, %d) = %q changed more than the watchdog:\n%+v\n%+v", cmdline, seconds, got, before, after)
		}
	})
}
