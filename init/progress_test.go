// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strings"
	"testing"
	"time"

	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
)

// TestNextStallNotice: the first notice comes limit after the last
// progress, each next one after as long again as the boot had stalled,
// never more than stallRepeatMax after the last; progress starts over.
func TestNextStallNotice(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	limit := time.Minute
	tests := []struct {
		name        string
		since, told time.Time
		limit       time.Duration
		want        time.Time
	}{
		{"never told", t0, time.Time{}, limit, t0.Add(limit)},
		{"told before the last progress", t0, t0.Add(-time.Hour), limit, t0.Add(limit)},
		{"told once", t0, t0.Add(limit), limit, t0.Add(2 * limit)},
		{"told twice", t0, t0.Add(2 * limit), limit, t0.Add(4 * limit)},
		{"told late, by a slow look", t0, t0.Add(limit + 10*time.Second), limit, t0.Add(2*limit + 20*time.Second)},
		{"at most stallRepeatMax apart", t0, t0.Add(16 * limit), limit, t0.Add(16*limit + stallRepeatMax)},
		{"told at the progress itself", t0, t0, limit, t0.Add(limit)},
		{"no limit", t0, time.Time{}, 0, t0.Add(time.Second)},
	}
	for _, tt := range tests {
		if got := nextStallNotice(tt.since, tt.told, tt.limit); !got.Equal(tt.want) {
			t.Errorf("%s: next notice at +%v, want +%v", tt.name, got.Sub(t0), tt.want.Sub(t0))
		}
	}
}

// TestStallLook walks a boot through its looks at the progress: quiet
// while it progresses or a human is asked, a notice naming the phase once
// it stalled for the limit, the next one later, none after progress.
func TestStallLook(t *testing.T) {
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	limit := 2 * b.cfg.Timeout
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var told time.Time
	b.prog.mark(t0, "root", false)

	if n, wait := b.stallLook(t0.Add(time.Second), &told, limit); n != "" || wait != limit-time.Second {
		t.Errorf("1 s after progress: notice %q, wait %v: want none, %v", n, wait, limit-time.Second)
	}
	n, wait := b.stallLook(t0.Add(limit), &told, limit)
	if !strings.Contains(n, "no progress for 1m0s, in its root phase") || !strings.Contains(n, "booted without rd.watchdog=, so nothing will restart this machine") {
		t.Errorf("at the limit: notice %q", n)
	}
	if wait != limit || !told.Equal(t0.Add(limit)) {
		t.Errorf("at the limit: wait %v, told +%v: want %v, +%v", wait, told.Sub(t0), limit, limit)
	}
	if n, _ := b.stallLook(t0.Add(limit+time.Second), &told, limit); n != "" {
		t.Errorf("just after a notice: %q", n)
	}
	if n, _ := b.stallLook(t0.Add(2*limit), &told, limit); !strings.Contains(n, "no progress for 2m0s, in its root phase") {
		t.Errorf("at twice the limit: notice %q", n)
	}

	b.prog.mark(t0.Add(3*limit), "", true) // a passphrase prompt
	if n, wait := b.stallLook(t0.Add(30*limit), &told, limit); n != "" || wait != limit {
		t.Errorf("while a human is asked: notice %q, wait %v", n, wait)
	}
	b.prog.mark(t0.Add(31*limit), "", false) // typed; the phase is still root
	if n, _ := b.stallLook(t0.Add(31*limit+time.Second), &told, limit); n != "" {
		t.Errorf("just after progress: %q", n)
	}
	if n, _ := b.stallLook(t0.Add(32*limit), &told, limit); !strings.Contains(n, "no progress for 1m0s, in its root phase") {
		t.Errorf("stalled again after progress: notice %q", n)
	}
	b.prog.end() // the emergency policy
	b.prog.mark(t0.Add(33*limit), "", false)
	if n, _ := b.stallLook(t0.Add(40*limit), &told, limit); n != "" {
		t.Errorf("after the boot ended in the emergency policy: %q", n)
	}
}

// TestStallNoticeWatchdog: the notice says what ends the hang, if
// anything: the watchdog running, and when; or none.
func TestStallNoticeWatchdog(t *testing.T) {
	cfg := kargs.Defaults()
	cfg.Watchdog = 20 * time.Second
	b := &boot{cfg: cfg, log: newLogger(nil)}
	b.wd = &watchdogState{}
	if n := b.stallNotice("data", time.Minute); !strings.Contains(n, "rd.watchdog=20 has no watchdog running, so nothing will restart this machine") {
		t.Errorf("search not done: %q", n)
	}
	b.wd.setReport(report.Watchdog{None: "no hardware watchdog appeared"})
	if n := b.stallNotice("data", time.Minute); !strings.Contains(n, "has no watchdog running") {
		t.Errorf("no watchdog found: %q", n)
	}
	b.wd.setReport(report.Watchdog{Device: "/dev/watchdog0", Timeout: 20})
	if n := b.stallNotice("data", time.Minute); !strings.Contains(n, "in its data phase") || !strings.Contains(n, "watchdog /dev/watchdog0 restarts the machine 5m50s after the last progress") {
		t.Errorf("watchdog running: %q", n)
	}
}
