// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/watchdog"
)

// The watchdog of rd.watchdog= (docs/boot-sequence.md, "Watchdog"): found
// and opened in the background from the devices phase on, fed while the
// boot makes progress or a human is at the console, handed over to systemd
// still running.

const (
	// watchdogSysfs and watchdogDev are where the kernel lists and makes
	// watchdog devices.
	watchdogSysfs = "/sys/class/watchdog"
	watchdogDev   = "/dev"
	// watchdogPoll is how often the search looks for a watchdog device.
	watchdogPoll = 50 * time.Millisecond
	// watchdogWork bounds the init's own work in a phase beyond its device
	// wait (rd.timeout): module loads, verity, mounts, seeding /var, the
	// /etc merge. It is generous: a reset of a boot that was only slow
	// costs a try.
	watchdogWork = 5 * time.Minute
	// writebackStep is how often whileWritingBack looks at the data that
	// waits for the disks.
	writebackStep = 2 * time.Second
	// softdog is the opt-in fallback module.
	softdog = "softdog"
)

// watchdogState is the search for a watchdog and the feeder once found.
type watchdogState struct {
	sysfs   string        // watchdogSysfs, elsewhere in tests
	dev     string        // watchdogDev, elsewhere in tests
	want    time.Duration // rd.watchdog=
	feeder  *watchdog.Feeder
	stop    chan struct{} // closed to end the search
	done    chan struct{} // closed when the search ended
	once    sync.Once
	settled bool // settleWatchdog ran (main goroutine only)
	mu      sync.Mutex
	rep     report.Watchdog // what the search found, or why nothing
}

// startWatchdog starts the search for a watchdog when rd.watchdog= asks for
// one: load the hardware drivers, wait for a device (up to the device
// wait), open it. The boot does not wait for it.
func (b *boot) startWatchdog() { b.startWatchdogAt(watchdogSysfs, watchdogDev) }

func (b *boot) startWatchdogAt(sysfs, dev string) {
	if b.cfg.Watchdog <= 0 {
		return
	}
	w := &watchdogState{sysfs: sysfs, dev: dev, want: b.cfg.Watchdog, stop: make(chan struct{}), done: make(chan struct{})}
	w.feeder = watchdog.NewFeeder(b.workLease(time.Now()), b.loud)
	b.wd = w
	b.prog.setWatchdog(w) // for the stall notice's goroutine
	b.goSafeThen("the watchdog search", func() { b.searchWatchdog(w) }, func() { close(w.done) })
}

// workLease is the lease of a phase starting at now.
func (b *boot) workLease(now time.Time) watchdog.Lease {
	return watchdog.Lease{Until: now.Add(b.leaseTimeout() + watchdogWork)}
}

// leaseTimeout is the device wait the watchdog's lease and the stall
// notices are built from: rd.timeout, but locked never more than the baked
// one. Locked, the command line may lengthen rd.timeout (kernel-args), and
// a week's would otherwise feed the mandatory watchdog through any hang
// for a week: no restart, no try spent, no rollback (found by a hunting
// helper). A device wait longer than the baked one plus watchdogWork then
// ends in the watchdog's restart (docs/cmdline.md).
func (b *boot) leaseTimeout() time.Duration {
	if b.baked != nil && b.baked.Locked && b.base.Timeout > 0 {
		return min(b.cfg.Timeout, b.base.Timeout)
	}
	return b.cfg.Timeout
}

// whileWritingBack runs fn, renewing the watchdog lease for as long as the
// data waiting for the disks (Dirty and Writeback) shrinks between two
// looks: a flush of gigabytes to slow storage (the syncfs that ends the
// seeding of /var, the /etc merge's) is one system call no per-file
// progress can renew the lease during. A disk that stops taking writes
// stops the renewals, and the lease then runs out as for any hang.
// Without a watchdog the same renewals are the boot's progress, which the
// stall notice watches (progress.go).
func (b *boot) whileWritingBack(fn func()) { b.whileShrinking(fn, writebackStep, dirtyKiB) }

func (b *boot) whileShrinking(fn func(), step time.Duration, dirty func() (uint64, error)) {
	stop, done := make(chan struct{}), make(chan struct{})
	b.goSafeThen("the progress during a flush", func() {
		renewWhileShrinking(stop, step, dirty, b.progress)
	}, func() { close(done) })
	defer func() {
		close(stop)
		<-done
	}()
	fn()
}

// renewWhileShrinking calls renew each step in which dirty fell, until
// stop is closed. A failed read renews nothing, and neither does the look
// after it (there is nothing to compare with).
func renewWhileShrinking(stop <-chan struct{}, step time.Duration, dirty func() (uint64, error), renew func()) {
	tick := time.NewTicker(step)
	defer tick.Stop()
	last, lerr := dirty()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now, err := dirty()
		if err == nil && lerr == nil && now < last {
			renew()
		}
		last, lerr = now, err
	}
}

// watchdogNotYet is why there is no watchdog when the report is written
// before one appeared.
const watchdogNotYet = "no hardware watchdog appeared while the initramfs ran"

func (b *boot) searchWatchdog(w *watchdogState) {
	info, ok, why := b.loadWatchdogDrivers(w)
	if !ok && why == "" {
		info, ok, why = b.pollWatchdog(w)
	}
	if ok {
		b.openWatchdog(w, info)
		return
	}
	b.fallbackWatchdog(w, why)
}

// loadWatchdogDrivers loads one driver at a time, in WatchdogModules'
// order, until a watchdog appears: the order decides which one is used
// when a machine has two (QEMU's q35 has an ICH9 TCO besides an added
// i6300esb), and probing for absent chipsets costs seconds under
// emulation. why is set when the search was stopped.
func (b *boot) loadWatchdogDrivers(w *watchdogState) (info watchdog.Info, ok bool, why string) {
	for _, name := range kmod.WatchdogModules() {
		if info, ok := watchdog.Choose(watchdog.List(w.sysfs), false); ok {
			return info, true, ""
		}
		select {
		case <-w.stop:
			return info, false, watchdogNotYet
		default:
		}
		// A driver whose hardware is absent may refuse to load: expected.
		for _, err := range b.mods.Load(kmod.Closure(b.baked.Modules, name)) {
			b.log.Debugf("watchdog drivers: %v", err)
		}
	}
	return info, false, ""
}

// pollWatchdog watches sysfs for a hardware watchdog (a driver added with
// mkinitrd --modules, or a slow probe) until the device wait ends or the
// search is stopped.
func (b *boot) pollWatchdog(w *watchdogState) (watchdog.Info, bool, string) {
	deadline := time.NewTimer(time.Until(b.devDeadline))
	defer deadline.Stop()
	tick := time.NewTicker(watchdogPoll)
	defer tick.Stop()
	for {
		if info, ok := watchdog.Choose(watchdog.List(w.sysfs), false); ok {
			return info, true, ""
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return watchdog.Info{}, false, fmt.Sprintf("no hardware watchdog appeared within the device wait (rd.timeout=%d)", int(b.cfg.Timeout/time.Second))
		case <-w.stop:
			return watchdog.Info{}, false, watchdogNotYet
		}
	}
}

// fallbackWatchdog runs when no hardware watchdog appeared: softdog if the
// image carries it (mkinitrd --modules softdog), else none, loudly.
func (b *boot) fallbackWatchdog(w *watchdogState, why string) {
	if mods := kmod.Closure(b.baked.Modules, softdog); len(mods) > 0 {
		for _, err := range b.mods.Load(mods) {
			b.log.Warnf("watchdog: %v", err)
		}
		if info, ok := watchdog.Choose(watchdog.List(w.sysfs), true); ok {
			b.loud("rd.watchdog=%d: %s; using softdog, which the image carries (it catches a hung user space, not a hung kernel)",
				int(w.want/time.Second), why)
			b.openWatchdog(w, info)
			return
		}
	}
	b.loud("rd.watchdog=%d: %s; booting without a watchdog", int(w.want/time.Second), why)
	w.setReport(report.Watchdog{None: why})
}

// openWatchdog opens info's device, sets the timeout and starts feeding.
func (b *boot) openWatchdog(w *watchdogState, info watchdog.Info) {
	dev, err := watchdog.Open(info.DevPath(w.dev), info.Identity)
	if err != nil {
		b.loud("rd.watchdog=%d: %v; booting without a watchdog", int(w.want/time.Second), err)
		w.setReport(report.Watchdog{Device: info.DevPath(w.dev), Identity: info.Identity, None: err.Error()})
		return
	}
	got, err := dev.SetTimeout(w.want)
	if err != nil {
		b.log.Warnf("%v", err)
	}
	if got <= 0 {
		got = w.want // the driver said nothing useful: feed as asked
	}
	w.feeder.Attach(dev, got)
	b.goSafe("the watchdog feeder", w.feeder.Run)
	b.log.Infof("watchdog %s (%s) running with a %v timeout", dev.Path, dev.Identity, got)
	w.setReport(report.Watchdog{Device: dev.Path, Identity: dev.Identity, Timeout: int(got / time.Second)})
}

func (w *watchdogState) setReport(r report.Watchdog) {
	w.mu.Lock()
	w.rep = r
	w.mu.Unlock()
}

// settleWatchdog ends the search (a watchdog found later is not used) and
// puts its outcome into the report.
func (b *boot) settleWatchdog() {
	if b.wd == nil || b.wd.settled {
		return
	}
	b.wd.settled = true
	b.wd.once.Do(func() { close(b.wd.stop) })
	<-b.wd.done
	b.reportWatchdog(b.rep)
	if r := b.rep.Watchdog; r.None != "" {
		b.rep.Warn("watchdog: %s", r.None)
	}
}

// reportWatchdog puts what the search found so far into rep without
// waiting for it: the emergency path reports a search still running so.
func (b *boot) reportWatchdog(rep *report.Report) {
	if b.wd == nil {
		return
	}
	b.wd.mu.Lock()
	r := b.wd.rep
	b.wd.mu.Unlock()
	if r == (report.Watchdog{}) {
		r.None = "no watchdog found yet"
	}
	rep.Watchdog = &r
}

// handOffWatchdog stops feeding and closes the watchdog without the magic
// close, so that it keeps running until systemd takes it over.
func (b *boot) handOffWatchdog() {
	if b.wd == nil {
		return
	}
	b.settleWatchdog()
	dev, err := b.wd.feeder.HandOff()
	if err != nil {
		b.log.Warnf("%v", err)
	}
	if dev != nil {
		b.log.Console("keel: watchdog %s (%s) left running with a %d s timeout: systemd must take it over (RuntimeWatchdogSec= in system.conf), or the machine resets",
			dev.Path, dev.Identity, b.rep.Watchdog.Timeout)
	}
}
