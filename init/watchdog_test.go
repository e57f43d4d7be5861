// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/watchdog"
)

// TestEagerModulesLeaveWatchdogs: without rd.watchdog= no watchdog driver
// loads (a loaded driver may arm a watchdog the firmware left running), and
// softdog never loads eagerly, even when the image carries it.
func TestEagerModulesLeaveWatchdogs(t *testing.T) {
	plan := []bakedconf.Module{
		{Name: "virtio_blk"}, {Name: "watchdog"},
		{Name: "i6300esb", Deps: []string{"watchdog"}}, {Name: "iTCO_vendor_support"},
		{Name: "iTCO_wdt", Deps: []string{"watchdog", "iTCO_vendor_support"}}, {Name: "lpc_ich"},
		{Name: "softdog", Deps: []string{"watchdog"}},
	}
	var got []string
	for _, m := range eagerModules(plan) {
		got = append(got, m.Name)
	}
	if !slices.Equal(got, []string{"virtio_blk"}) {
		t.Errorf("eager modules %v, want only virtio_blk", got)
	}
}

// TestWatchdogLease: each phase gets the device wait plus the work margin;
// a prompt or a shell holds the watchdog for a human; nothing happens
// without rd.watchdog=.
func TestWatchdogLease(t *testing.T) {
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	b.progress() // no watchdog: no-op, no panic
	b.humanAtConsole()
	b.settleWatchdog()
	b.handOffWatchdog()
	if b.rep != nil && b.rep.Watchdog != nil {
		t.Error("a report watchdog without rd.watchdog=")
	}
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	l := b.workLease(now)
	if l.Human || !l.Until.Equal(now.Add(30*time.Second+watchdogWork)) {
		t.Errorf("work lease %+v: want until rd.timeout + %v", l, watchdogWork)
	}
	if !l.Feeds(now.Add(5*time.Minute)) || l.Feeds(now.Add(6*time.Minute)) {
		t.Errorf("work lease %+v: want fed 5 min in, not 6 min in", l)
	}
}

// TestRenewWhileShrinking: during a flush the lease is renewed at each look
// that finds less data waiting for the disks than the look before, never
// when it stayed, grew, or could not be read (nor at the look after a
// failed read).
func TestRenewWhileShrinking(t *testing.T) {
	type look struct {
		kib uint64
		err error
	}
	bad := errors.New("meminfo: expected Dirty and Writeback lines")
	looks := []look{{100, nil}, {90, nil}, {90, nil}, {95, nil}, {80, nil}, {0, bad}, {70, nil}, {60, nil}, {60, nil}}
	stop := make(chan struct{})
	i := 0
	dirty := func() (uint64, error) {
		l := looks[min(i, len(looks)-1)]
		if i++; i == len(looks) {
			close(stop) // the flush ends after the last look
		}
		return l.kib, l.err
	}
	renewed := 0
	renewWhileShrinking(stop, time.Millisecond, dirty, func() { renewed++ })
	// 100→90, 95→80 and 70→60 shrank; 90→90, 90→95, the failed read and
	// the look after it, 60→60 did not.
	if renewed != 3 {
		t.Errorf("renewed %d times over %d looks, want 3", renewed, len(looks))
	}
}

// TestWhileWritingBackRunsOnce: with a watchdog, a flush the whole of which
// falls within one step still runs fn exactly once and stops its watcher
// (no goroutine left behind that renews the lease later); without one, fn
// runs alone.
func TestWhileWritingBackRunsOnce(t *testing.T) {
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	ran := 0
	b.whileWritingBack(func() { ran++ })
	b.wd = &watchdogState{feeder: watchdog.NewFeeder(watchdog.Lease{}, nil)}
	b.whileWritingBack(func() { ran++ })
	if ran != 2 {
		t.Fatalf("fn ran %d times, want 2", ran)
	}
	if l := b.wd.feeder.Lease(); !l.Until.IsZero() {
		t.Errorf("lease %+v after a flush that made no progress look: want it left alone", l)
	}
	// No watcher is left behind to renew the lease after the flush: in a
	// bubble of fake time, ten steps after a flush whose writeback would
	// shrink at every look, the lease is still untouched (a helper's audit
	// found the check above could not see a late renewal).
	synctest.Test(t, func(t *testing.T) {
		b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
		b.wd = &watchdogState{feeder: watchdog.NewFeeder(watchdog.Lease{}, nil)}
		left := uint64(1 << 30)
		shrinking := func() (uint64, error) { left--; return left, nil }
		b.whileShrinking(func() {}, time.Second, shrinking)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if l := b.wd.feeder.Lease(); !l.Until.IsZero() {
			t.Errorf("lease %+v renewed after the flush returned", l)
		}
		// The same flush lasting three steps renews it: the check above
		// can fail.
		b.whileShrinking(func() { time.Sleep(3 * time.Second) }, time.Second, shrinking)
		if l := b.wd.feeder.Lease(); l.Until.IsZero() {
			t.Error("a flush that shrank for three steps did not renew the lease")
		}
	})
}

// watchdogBoot is a boot with rd.watchdog=20 and a fake sysfs and /dev in
// a temporary directory; sysfs lists the given watchdogs, each with a
// regular file as its device node.
func watchdogBoot(t *testing.T, console *bytes.Buffer, ids map[string]string) (b *boot, sysfs, dev string) {
	t.Helper()
	dir := t.TempDir()
	sysfs, dev = filepath.Join(dir, "sys"), filepath.Join(dir, "dev")
	for _, d := range []string{sysfs, dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, id := range ids {
		if err := os.MkdirAll(filepath.Join(sysfs, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sysfs, name, "identity"), []byte(id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dev, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := kargs.Defaults()
	cfg.Watchdog = 20 * time.Second
	b = &boot{cfg: cfg, log: newLogger(console), rep: &report.Report{}, baked: &bakedconf.Config{},
		mods: &kmod.Session{}, devDeadline: time.Now().Add(time.Hour)}
	return b, sysfs, dev
}

// TestWatchdogSearchAndHandOff runs the init's search, report and hand-off
// over a fake sysfs: the hardware watchdog is chosen over softdog, named in
// the report, and handed off without a byte written to it (no magic close).
// The device node is a regular file, so its ioctls fail: the init says so
// and goes on.
func TestWatchdogSearchAndHandOff(t *testing.T) {
	var console bytes.Buffer
	b, sysfs, dev := watchdogBoot(t, &console, map[string]string{"watchdog0": watchdog.SoftIdentity, "watchdog1": "i6300ESB timer"})
	b.startWatchdogAt(sysfs, dev)
	b.settleWatchdog()
	b.settleWatchdog() // once only: no second warning
	want := report.Watchdog{Device: filepath.Join(dev, "watchdog1"), Identity: "i6300ESB timer", Timeout: 20}
	if b.rep.Watchdog == nil || *b.rep.Watchdog != want || len(b.rep.Warnings) != 0 {
		t.Fatalf("report watchdog %+v, warnings %q: want %+v", b.rep.Watchdog, b.rep.Warnings, want)
	}
	b.humanAtConsole()
	if l := b.wd.feeder.Lease(); !l.Human {
		t.Errorf("lease %+v after humanAtConsole", l)
	}
	b.progress()
	if l := b.wd.feeder.Lease(); l.Human || !l.Feeds(time.Now()) {
		t.Errorf("lease %+v after progress: want a work lease", l)
	}
	b.handOffWatchdog()
	if !strings.Contains(console.String(), "left running with a 20 s timeout: systemd must take it over (RuntimeWatchdogSec= in system.conf)") {
		t.Errorf("console %q: want the hand-off named", console.String())
	}
	for _, name := range []string{"watchdog0", "watchdog1"} {
		if b, err := os.ReadFile(filepath.Join(dev, name)); err != nil || len(b) != 0 {
			t.Errorf("%s holds %q (%v): want nothing written (no magic close)", name, b, err)
		}
	}
}

// TestWatchdogSearchNone: only softdog registered (not carried by the
// image) is no watchdog: said loudly, in the report and as a warning.
func TestWatchdogSearchNone(t *testing.T) {
	var console bytes.Buffer
	b, sysfs, dev := watchdogBoot(t, &console, map[string]string{"watchdog0": watchdog.SoftIdentity})
	b.startWatchdogAt(sysfs, dev)
	b.settleWatchdog()
	w := b.rep.Watchdog
	if w == nil || w.Device != "" || w.None != "no hardware watchdog appeared while the initramfs ran" ||
		len(b.rep.Warnings) != 1 || !strings.Contains(b.rep.Warnings[0], "no hardware watchdog") {
		t.Fatalf("report watchdog %+v, warnings %q", w, b.rep.Warnings)
	}
	if !strings.Contains(console.String(), "rd.watchdog=20: no hardware watchdog appeared while the initramfs ran; booting without a watchdog") {
		t.Errorf("console %q", console.String())
	}
	b.handOffWatchdog() // nothing to hand off
	if strings.Contains(console.String(), "left running") {
		t.Errorf("console %q: a hand-off without a watchdog", console.String())
	}
}

// TestWatchdogSearchDeadline: the device wait over before any watchdog
// appeared ends the search by itself, saying so.
func TestWatchdogSearchDeadline(t *testing.T) {
	var console bytes.Buffer
	b, sysfs, dev := watchdogBoot(t, &console, nil)
	b.devDeadline = time.Now().Add(-time.Second)
	b.startWatchdogAt(sysfs, dev)
	<-b.wd.done // ended without settleWatchdog stopping it
	b.settleWatchdog()
	if w := b.rep.Watchdog; w == nil || w.None != "no hardware watchdog appeared within the device wait (rd.timeout=30)" {
		t.Fatalf("report watchdog %+v", w)
	}
}

// TestLockedLeaseFromBakedTimeout: locked, the command line may lengthen
// rd.timeout (to a week here), but the watchdog's lease and the stall
// notices stay built from the baked wait, so a hang still ends in the
// watchdog's restart (a try spent, a rollback) within minutes. Unlocked,
// the command line's wait is the lease's.
func TestLockedLeaseFromBakedTimeout(t *testing.T) {
	for _, locked := range []bool{true, false} {
		base, problems := kargs.FromBaked("rd.timeout=20 rd.watchdog=30", locked)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		cfg, problems := kargs.Parse("rd.timeout=604800", base, locked)
		if len(problems) > 0 || cfg.Timeout != 604800*time.Second {
			t.Fatalf("locked %v: rd.timeout=604800 gave %v, %v: want it taken (the test is about what it feeds)", locked, cfg.Timeout, problems)
		}
		b := &boot{cfg: cfg, base: base, baked: &bakedconf.Config{Locked: locked}, log: newLogger(nil)}
		now := time.Date(2026, 12, 3, 1, 0, 0, 0, time.UTC)
		want := now.Add(604800*time.Second + watchdogWork)
		if locked {
			want = now.Add(20*time.Second + watchdogWork)
		}
		if l := b.workLease(now); !l.Until.Equal(want) {
			t.Errorf("locked %v: lease until %v, want %v", locked, l.Until, want)
		}
	}
}

// TestShellLeaseKept: once the emergency shell holds the console, the boot
// sequence's progress (still running beside an emergency a goroutine's
// panic started) leaves the shell's lease alone.
func TestShellLeaseKept(t *testing.T) {
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	b.wd = &watchdogState{feeder: watchdog.NewFeeder(watchdog.Lease{}, nil)}
	b.progress()
	if l := b.wd.feeder.Lease(); l.Human || l.Until.IsZero() {
		t.Fatalf("lease %+v after progress: want a work lease (the check below can fail)", l)
	}
	b.shellHeld.Store(true)
	b.humanAtConsole()
	b.progress()
	b.enterPhase("root")
	if l := b.wd.feeder.Lease(); !l.Human {
		t.Errorf("lease %+v after the sequence's progress under the shell: want the human's kept", l)
	}
}

// TestHaltSyncRenewsLease: the emergency reboot's sync, waited for as long
// as the write-back gets on, renews the watchdog's work lease at each sign
// of progress, so a slow disk's write-back is not reset in its middle.
func TestHaltSyncRenewsLease(t *testing.T) {
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	b.wd = &watchdogState{feeder: watchdog.NewFeeder(watchdog.Lease{}, nil)}
	sys := b.haltSys()
	if sys.Sync == nil || sys.Dirty == nil || sys.Written == nil || sys.Progress == nil {
		t.Fatalf("halt's sys %+v: want sync, both readings and the progress", sys)
	}
	sys.Progress()
	if l := b.wd.feeder.Lease(); l.Human || !l.Feeds(time.Now()) {
		t.Errorf("lease %+v after the sync's progress: want a work lease", l)
	}
}
