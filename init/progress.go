// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/watchdog"
)

// The boot's progress (docs/boot-sequence.md, "A boot that stops"): each
// phase, each file the /var seed copies and each stretch of an image read
// through dm-verity marks it. The marks renew the watchdog's lease
// (watchdog.go) and hold off the stall notice: a boot that made no progress
// for twice the device wait (rd.timeout) says so on the console, in which
// phase and since when, whether or not a watchdog will end it, and says it
// again after twice as long each time (at most every stallRepeatMax). A
// hang — a disk that stops answering the reads of a slot's image, a mount
// that never returns — was silent without rd.watchdog=. Nothing is said
// while someone at the console is asked for something, nor once the
// emergency policy runs (it says what it waits for).

// stallRepeatMax bounds the time between two stall notices, so that the
// last one on a console is never older than this.
const stallRepeatMax = 10 * time.Minute

// progressState is the last mark: when and in which phase, or a human at
// the console; or the boot's end in the emergency policy.
type progressState struct {
	mu    sync.Mutex
	phase string
	since time.Time
	human bool
	ended bool
}

// end stops the stall notices for good.
func (p *progressState) end() {
	p.mu.Lock()
	p.ended = true
	p.mu.Unlock()
}

func (p *progressState) mark(now time.Time, phase string, human bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.since, p.human = now, human
	if phase != "" {
		p.phase = phase
	}
}

// get returns the last mark; human is also set once the boot ended.
func (p *progressState) get() (phase string, since time.Time, human bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.phase, p.since, p.human || p.ended
}

// enterPhase marks the start of a phase.
func (b *boot) enterPhase(name string) {
	b.prog.mark(time.Now(), name, false)
	b.renewLease()
}

// progress marks progress within the phase.
func (b *boot) progress() {
	b.prog.mark(time.Now(), "", false)
	b.renewLease()
}

// renewLease gives the watchdog a new work lease.
func (b *boot) renewLease() {
	if b.wd != nil {
		b.wd.feeder.Set(b.workLease(time.Now()))
	}
}

// humanAtConsole marks a wait for someone at the console (a passphrase
// prompt, the emergency shell), for as long as it takes: the watchdog is
// fed and no stall is noticed until the next progress.
func (b *boot) humanAtConsole() {
	b.prog.mark(time.Now(), "", true)
	if b.wd != nil {
		b.wd.feeder.Set(watchdog.Lease{Human: true})
	}
}

// nextStallNotice is when a boot whose last progress was at since, last
// told to have stalled at told (zero, or before since: not told since),
// is told next: limit after the progress, then each time after as long
// again as it had stalled when last told, at most stallRepeatMax later.
func nextStallNotice(since, told time.Time, limit time.Duration) time.Time {
	if told.Before(since) || limit <= 0 {
		return since.Add(max(limit, time.Second))
	}
	return told.Add(min(max(told.Sub(since), limit), stallRepeatMax))
}

// startStallNotices watches the progress from its own goroutine until the
// process ends (switch_root execs the real init).
func (b *boot) startStallNotices() {
	limit := 2 * b.cfg.Timeout
	b.goSafe("the stall notice", func() {
		var told time.Time
		for {
			notice, wait := b.stallLook(time.Now(), &told, limit)
			if notice != "" {
				b.loud("%s", notice)
			}
			time.Sleep(wait)
		}
	})
}

// stallLook is one look at the progress at now, the last notice at told:
// the notice due ("" for none; told is then now) and how long until the
// next look.
func (b *boot) stallLook(now time.Time, told *time.Time, limit time.Duration) (notice string, wait time.Duration) {
	phase, since, human := b.prog.get()
	if human {
		return "", max(limit, time.Second)
	}
	if due := nextStallNotice(since, *told, limit); now.Before(due) {
		return "", due.Sub(now)
	}
	*told = now
	return b.stallNotice(phase, now.Sub(since)), nextStallNotice(since, now, limit).Sub(now)
}

// stallNotice is what a boot stalled in phase for d says.
func (b *boot) stallNotice(phase string, d time.Duration) string {
	msg := fmt.Sprintf("the boot has made no progress for %v, in its %s phase (a disk that stopped answering? a file system whose mount hangs?); ", d.Round(time.Second), phase)
	var wd report.Watchdog
	if b.wd != nil {
		b.wd.mu.Lock()
		wd = b.wd.rep
		b.wd.mu.Unlock()
	}
	switch {
	case b.cfg.Watchdog <= 0:
		return msg + "booted without rd.watchdog=, so nothing will restart this machine"
	case wd.Device == "" || wd.None != "":
		return msg + fmt.Sprintf("rd.watchdog=%d has no watchdog running, so nothing will restart this machine", int(b.cfg.Watchdog/time.Second))
	}
	return msg + fmt.Sprintf("watchdog %s restarts the machine %v after the last progress", wd.Device, b.cfg.Timeout+watchdogWork+time.Duration(wd.Timeout)*time.Second)
}
