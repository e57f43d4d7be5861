// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"testing"
	"time"
)

func TestParseWatchdog(t *testing.T) {
	const expected = "expected whole seconds from 1 to 3600, or 0 or off for no watchdog"
	runParseCases(t, false, []parseCase{
		{"seconds", "rd.watchdog=60", func(c *Config) { c.Watchdog = time.Minute }, nil},
		{"one second", "rd.watchdog=1", func(c *Config) { c.Watchdog = time.Second }, nil},
		{"an hour", "rd.watchdog=3600", func(c *Config) { c.Watchdog = time.Hour }, nil},
		{"0 turns it off", "rd.watchdog=30 rd.watchdog=0", nil, nil},
		{"off turns it off", "rd.watchdog=30 rd.watchdog=off", nil, nil},
		{"no turns it off", "rd.watchdog=30 rd.watchdog=NO", nil, nil},
		{"over an hour", "rd.watchdog=3601", nil, []Problem{{"rd.watchdog", "3601", expected, true}}},
		{"bare", "rd.watchdog", nil, []Problem{{"rd.watchdog", "", expected, false}}},
		{"empty", "rd.watchdog=", nil, []Problem{{"rd.watchdog", "", expected, true}}},
		{"on is no timeout", "rd.watchdog=on", nil, []Problem{{"rd.watchdog", "on", expected, true}}},
		{"negative", "rd.watchdog=-5", nil, []Problem{{"rd.watchdog", "-5", expected, true}}},
		{"unit", "rd.watchdog=30s", nil, []Problem{{"rd.watchdog", "30s", expected, true}}},
		{"bad keeps previous", "rd.watchdog=30 rd.watchdog=soon", func(c *Config) { c.Watchdog = 30 * time.Second },
			[]Problem{{"rd.watchdog", "soon", expected, true}}},
		{"huge", "rd.watchdog=99999999999999999999", nil, []Problem{{"rd.watchdog", "99999999999999999999", expected, true}}},
		{"dash spelling", "rd-watchdog=30", nil, nil},
	})
}

// TestParseWatchdogLocked: a locked initramfs keeps the baked watchdog,
// whether one is baked or not; the refusal names the baked value.
func TestParseWatchdogLocked(t *testing.T) {
	runParseCases(t, true, []parseCase{
		{"none baked: enabling refused", "rd.watchdog=30", nil,
			[]Problem{{"rd.watchdog", "30", refusedLocked + ", and the baked watchdog is off", true}}},
		{"none baked: off repeated", "rd.watchdog=0 rd.watchdog=off", nil, nil},
		{"bad value is a bad value", "rd.watchdog=x", nil, []Problem{{"rd.watchdog", "x", "expected whole seconds", true}}},
	})
	base, problems := FromBaked("rd.watchdog=60", true)
	if problems != nil || base.Watchdog != time.Minute {
		t.Fatalf("FromBaked(rd.watchdog=60, locked) = %v, %v: want a 60 s watchdog", base.Watchdog, problems)
	}
	got, problems := Parse("rd.watchdog=0 rd.watchdog=off rd.watchdog=600 rd.watchdog=5 rd.watchdog=60", base, true)
	if got.Watchdog != time.Minute {
		t.Errorf("locked over a baked 60 s: watchdog %v, want 1m0s", got.Watchdog)
	}
	lockedWD := func(v string) Problem {
		return Problem{"rd.watchdog", v, refusedLocked + ", and the baked watchdog is 60 s", true}
	}
	checkProblems(t, problems, []Problem{lockedWD("0"), lockedWD("off"), lockedWD("600"), lockedWD("5")})
	for _, p := range problems {
		if !p.Refused() {
			t.Errorf("%v: Refused() = false", p)
		}
	}
	if got, problems := Parse("rd.watchdog=0", base, false); got.Watchdog != 0 || problems != nil {
		t.Errorf("unlocked over a baked 60 s: rd.watchdog=0 gives %v, %v; the command line should win", got.Watchdog, problems)
	}
}

func TestWatchdogString(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "off", -time.Second: "off", time.Second: "1 s", time.Hour: "3600 s"} {
		if got := WatchdogString(d); got != want {
			t.Errorf("WatchdogString(%v) = %q, want %q", d, got, want)
		}
	}
}
