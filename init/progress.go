// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/watchdog"
)

// The boot's progress (docs/boot-sequence.md, "A boot that stops"): each
// phase, each file the /var seed copies, each stretch of an image read
// through dm-verity, each key derivation of an unlock and each look at a
// flush in which the data waiting for the disks shrank marks it. The marks
// renew the watchdog's lease (watchdog.go) and hold off the stall notice:
// a boot that made no progress for twice the device wait (rd.timeout) says
// so on the console, in which phase and since when, whether or not a
// watchdog will end it, and says it again after twice as long each time
// (at most every stallRepeatMax). A hang — a disk that stops answering the
// reads of a slot's image, a mount that never returns — was silent without
// rd.watchdog=. Nothing is said while someone at the console is asked for
// something, nor once the emergency policy runs (it says what it waits
// for).

const (
	// stallRepeatMax bounds the time between two stall notices, so that
	// the last one on a console is never older than this.
	stallRepeatMax = 10 * time.Minute
	// stallLooks is how many looks at the progress the notice takes per
	// limit: a stall that begins while it sleeps is told at most
	// limit/stallLooks late.
	stallLooks = 4
)

// progressState is the last mark: when and in which phase, or a human at
// the console; or the boot's end in the emergency policy. It also holds
// the watchdog search for the notice's goroutine, which starts before it.
type progressState struct {
	mu    sync.Mutex
	phase string
	since time.Time
	human bool
	ended bool
	wd    *watchdogState
}

// progressMark is what the stall notice looks at.
type progressMark struct {
	phase string
	since time.Time
	quiet bool // a human is asked, or the boot ended
	wd    *watchdogState
	loads []kmod.Running // the module loads not returned yet, the oldest first
}

func (p *progressState) mark(now time.Time, phase string, human bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.since, p.human = now, human
	if phase != "" {
		p.phase = phase
	}
}

// end stops the stall notices for good.
func (p *progressState) end() {
	p.mu.Lock()
	p.ended = true
	p.mu.Unlock()
}

func (p *progressState) setWatchdog(w *watchdogState) {
	p.mu.Lock()
	p.wd = w
	p.mu.Unlock()
}

func (p *progressState) get() progressMark {
	p.mu.Lock()
	defer p.mu.Unlock()
	return progressMark{phase: p.phase, since: p.since, quiet: p.human || p.ended, wd: p.wd}
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

// renewLease gives the watchdog a new work lease; not once the emergency
// shell holds the console (b.shellHeld): the boot sequence, still running
// beside an emergency a goroutine's panic started, would otherwise replace
// the shell's lease with a work lease that runs out under someone typing
// (found by a hunting helper).
func (b *boot) renewLease() {
	if b.wd != nil && !b.shellHeld.Load() {
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
	limit, timeout := 2*b.leaseTimeout(), b.leaseTimeout()
	b.goSafe("the stall notice", func() {
		var told time.Time
		for {
			notice, wait := stallLook(b.stallMark(), time.Now(), &told, limit, timeout)
			if notice != "" {
				b.loud("%s", notice)
			}
			time.Sleep(wait)
		}
	})
}

// stallMark is the progress the stall notice looks at, with the module
// loads not returned yet (b.mods is set in early-mounts, before the
// notice's goroutine starts; nil without a baked plan).
func (b *boot) stallMark() progressMark {
	m := b.prog.get()
	if b.mods != nil {
		m.loads = b.mods.Running()
	}
	return m
}

// stallLook is one look at the progress m at now, the last notice at told:
// the notice due ("" for none; told is then now) and how long until the
// next look, never more than limit/stallLooks, so that progress in a long
// wait for the next notice starts the count over in time.
func stallLook(m progressMark, now time.Time, told *time.Time, limit, timeout time.Duration) (notice string, wait time.Duration) {
	look := max(limit/stallLooks, 100*time.Millisecond)
	if m.quiet {
		return "", look
	}
	if due := nextStallNotice(m.since, *told, limit); now.Before(due) {
		return "", min(due.Sub(now), look)
	}
	*told = now
	return stallNotice(m, now, timeout), min(nextStallNotice(m.since, now, limit).Sub(now), look)
}

// stallHints say what a phase may be waiting for.
var stallHints = map[string]string{
	"devices":     "a disk or a module load that does not finish?",
	"data":        "the data partition's disk that stopped answering, or its file system's mount or flush that hangs?",
	"root":        "the system disk that stopped answering the slot's image, or a mount that hangs?",
	"report":      "a disk that stopped answering?",
	"switch_root": "a disk that stopped answering?",
}

// stallLoadsShown is how many of the module loads not returned a stall
// notice names.
const stallLoadsShown = 4

// stallNotice is what a boot stalled in m.phase since m.since says at now.
// It names the module loads that have not returned, each with how long
// it has been in the kernel: a driver whose probe of a device never ends
// holds its load there, and the boot with it (docs/boot-sequence.md, "A
// boot that stops").
func stallNotice(m progressMark, now time.Time, timeout time.Duration) string {
	msg := fmt.Sprintf("the boot has made no progress for %v, in its %s phase", now.Sub(m.since).Round(time.Second), m.phase)
	if h := stallHints[m.phase]; h != "" {
		msg += " (" + h + ")"
	}
	if len(m.loads) > 0 {
		var names []string
		for _, l := range m.loads[:min(len(m.loads), stallLoadsShown)] {
			names = append(names, fmt.Sprintf("%s for %v", l.Name, now.Sub(l.Since).Round(time.Second)))
		}
		msg += "; module loads not returned: " + strings.Join(names, ", ")
		if n := len(m.loads) - stallLoadsShown; n > 0 {
			msg += fmt.Sprintf(" and %d more", n)
		}
	}
	if m.wd == nil {
		return msg + "; booted without rd.watchdog=, so nothing will restart this machine"
	}
	m.wd.mu.Lock()
	r := m.wd.rep
	m.wd.mu.Unlock()
	want := int(m.wd.want / time.Second)
	switch {
	case r.None != "":
		return msg + fmt.Sprintf("; rd.watchdog=%d found no watchdog to use (%s), so nothing will restart this machine", want, r.None)
	case r.Device == "":
		return msg + fmt.Sprintf("; rd.watchdog=%d has found no watchdog yet, so nothing will restart this machine unless one appears", want)
	}
	return msg + fmt.Sprintf("; watchdog %s restarts the machine %v after the last progress", r.Device, timeout+watchdogWork+time.Duration(r.Timeout)*time.Second)
}
