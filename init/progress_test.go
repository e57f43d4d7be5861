// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/kmod"
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
// it stalled for the limit, the next one later, none after progress; no
// look further off than a quarter of the limit.
func TestStallLook(t *testing.T) {
	var p progressState
	timeout := 30 * time.Second
	limit := 2 * timeout
	look := limit / stallLooks
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var told time.Time
	p.mark(t0, "root", false)
	at := func(d time.Duration) (string, time.Duration) {
		return stallLook(p.get(), t0.Add(d), &told, limit, timeout)
	}

	if n, wait := at(time.Second); n != "" || wait != look {
		t.Errorf("1 s after progress: notice %q, wait %v: want none, %v", n, wait, look)
	}
	if n, wait := at(limit - time.Second); n != "" || wait != time.Second {
		t.Errorf("1 s before the limit: notice %q, wait %v: want none, 1s", n, wait)
	}
	n, wait := at(limit)
	if !strings.Contains(n, "no progress for 1m0s, in its root phase (the system disk that stopped answering") || !strings.Contains(n, "booted without rd.watchdog=, so nothing will restart this machine") {
		t.Errorf("at the limit: notice %q", n)
	}
	if wait != look || !told.Equal(t0.Add(limit)) {
		t.Errorf("at the limit: wait %v, told +%v: want %v, +%v", wait, told.Sub(t0), look, limit)
	}
	if n, _ := at(limit + time.Second); n != "" {
		t.Errorf("just after a notice: %q", n)
	}
	if n, _ := at(2 * limit); !strings.Contains(n, "no progress for 2m0s, in its root phase") {
		t.Errorf("at twice the limit: notice %q", n)
	}

	p.mark(t0.Add(3*limit), "", true) // a passphrase prompt
	if n, wait := at(30 * limit); n != "" || wait != look {
		t.Errorf("while a human is asked: notice %q, wait %v", n, wait)
	}
	p.mark(t0.Add(31*limit), "", false) // typed; the phase is still root
	if n, _ := at(31*limit + time.Second); n != "" {
		t.Errorf("just after progress: %q", n)
	}
	if n, _ := at(32 * limit); !strings.Contains(n, "no progress for 1m0s, in its root phase") {
		t.Errorf("stalled again after progress: notice %q", n)
	}
	p.end() // the emergency policy
	p.mark(t0.Add(33*limit), "", false)
	if n, _ := at(40 * limit); n != "" {
		t.Errorf("after the boot ended in the emergency policy: %q", n)
	}
}

// TestStallNoticeWatchdog: the notice says what ends the hang, if
// anything: the watchdog running, and when; none found; none yet.
func TestStallNoticeWatchdog(t *testing.T) {
	w := &watchdogState{want: 20 * time.Second}
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	m := progressMark{phase: "data", wd: w, since: t0}
	if n := stallNotice(m, t0.Add(time.Minute), 30*time.Second); !strings.Contains(n, "rd.watchdog=20 has found no watchdog yet, so nothing will restart this machine unless one appears") {
		t.Errorf("search not done: %q", n)
	}
	w.setReport(report.Watchdog{None: "no hardware watchdog appeared"})
	if n := stallNotice(m, t0.Add(time.Minute), 30*time.Second); !strings.Contains(n, "rd.watchdog=20 found no watchdog to use (no hardware watchdog appeared), so nothing will restart") {
		t.Errorf("no watchdog found: %q", n)
	}
	w.setReport(report.Watchdog{Device: "/dev/watchdog0", Timeout: 20})
	if n := stallNotice(m, t0.Add(time.Minute), 30*time.Second); !strings.Contains(n, "in its data phase (the data partition's disk") || !strings.Contains(n, "watchdog /dev/watchdog0 restarts the machine 5m50s after the last progress") {
		t.Errorf("watchdog running: %q", n)
	}
}

// TestStallNoticeNamesLoads: a boot held by a module load that never
// returns (a driver whose probe of a device never ends) names the loads
// still in the kernel, the oldest first, each with how long it has run;
// the notice's mark carries the session's loads. The notice named only
// the phase, with a guess.
func TestStallNoticeNamesLoads(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	m := progressMark{phase: "data", since: t0}
	if n := stallNotice(m, t0.Add(time.Minute), 30*time.Second); strings.Contains(n, "module loads") {
		t.Errorf("no load running: %q", n)
	}
	m.loads = []kmod.Running{{Name: "ahci", Since: t0.Add(-10 * time.Second)}, {Name: "btrfs", Since: t0}, {Name: "c", Since: t0}, {Name: "d", Since: t0}, {Name: "e", Since: t0.Add(time.Second)}}
	n := stallNotice(m, t0.Add(2*time.Minute), 30*time.Second)
	if want := "in its data phase (the data partition's disk that stopped answering, or its file system's mount or flush that hangs?); module loads not returned: ahci for 2m10s, btrfs for 2m0s, c for 2m0s, d for 2m0s and 1 more; booted without rd.watchdog="; !strings.Contains(n, want) {
		t.Errorf("notice %q\nwant it to contain %q", n, want)
	}

	release := make(chan struct{})
	defer close(release)
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	if m := b.stallMark(); m.loads != nil {
		t.Errorf("no module session: loads %v", m.loads)
	}
	b.mods = &kmod.Session{Root: "/", Loader: func(path, _ string) error {
		if strings.HasSuffix(path, "/stuck.ko") {
			<-release
		}
		return nil
	}}
	go b.mods.Load([]bakedconf.Module{{Name: "stuck", Path: "stuck.ko"}, {Name: "quick", Path: "quick.ko"}})
	for {
		if l := b.stallMark().loads; len(l) == 1 && l[0].Name == "stuck" {
			break
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStallNoticeSeesWatchdog: the watchdog search, started after the
// notice's goroutine, reaches it through the progress state, under its
// lock (the goroutine read boot.wd, written after it started).
func TestStallNoticeSeesWatchdog(t *testing.T) {
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	done := make(chan progressMark)
	go func() {
		for {
			if m := b.prog.get(); m.wd != nil {
				done <- m
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	b.prog.setWatchdog(&watchdogState{want: time.Second})
	if m := <-done; m.wd.want != time.Second {
		t.Errorf("watchdog %+v", m.wd)
	}
}

// TestFlushIsProgress: without a watchdog, a flush whose data waiting for
// the disks shrinks is progress (it used to be marked only with one: a
// first boot flushing gigabytes was told it had stalled).
func TestFlushIsProgress(t *testing.T) {
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	t0 := time.Now()
	b.prog.mark(t0, "data", false)
	var mu sync.Mutex
	dirty := uint64(1 << 20)
	b.whileShrinking(func() {
		// The flush, until progress is marked; the limit only bounds a
		// failure, no verdict depends on it.
		for limit := time.Now().Add(time.Minute); !b.prog.get().since.After(t0); {
			if time.Now().After(limit) {
				t.Error("a flush whose dirty data shrinks marked no progress")
				return
			}
			time.Sleep(time.Millisecond)
		}
	}, time.Millisecond, func() (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		dirty--
		return dirty, nil
	})
}
