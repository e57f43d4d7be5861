// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// failGuard makes the emergency policy run once per boot whatever goroutine
// reaches it first: the boot sequence with its error, or a goroutine of PID
// 1 (a module loader, the uevent reader) with its panic. A panic while the
// emergency runs halts the machine with a message; nothing exits PID 1.
type failGuard struct {
	mu     sync.Mutex
	active bool // the emergency policy has started
	// switching: the boot sequence is past its last check and switches
	// root (beginSwitch); a goroutine's panic then waits, parked, for the
	// exec, whose failure the sequence itself takes to the emergency.
	switching bool
	// aside: the policy was started by another goroutine than the boot
	// sequence, which may still be writing its report (failureReport).
	aside bool
	// emergency runs the policy and does not return in PID 1 (b.emergency);
	// halt stops the machine after a second panic (b.halt); park blocks a
	// goroutine forever (the boot sequence, once another goroutine runs the
	// emergency). Tests replace them.
	emergency func(error)
	halt      func(msg string)
	park      func()
}

// guard returns the boot's failGuard, wired to the real emergency path
// unless a test wired it already.
func (b *boot) guard() *failGuard {
	g := &b.fail
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.emergency == nil {
		g.emergency = b.emergency
	}
	if g.halt == nil {
		g.halt = func(msg string) {
			b.log.Console("keel: %s", msg)
			policy := "reboot"
			if b.cfg.Emergency == "poweroff" {
				policy = "poweroff"
			}
			b.halt(policy)
		}
	}
	if g.park == nil {
		g.park = func() {
			for {
				time.Sleep(time.Hour)
			}
		}
	}
	return g
}

// failed reports whether the emergency policy has started.
func (b *boot) failed() bool {
	g := b.guard()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active
}

// enterEmergency runs the emergency policy for err, once: a second caller
// (another goroutine) is parked forever. A panic inside the policy halts.
// The boot sequence calls it; other goroutines reach it through panicked.
func (b *boot) enterEmergency(err error) { b.startEmergency(err, false) }

// startEmergency is enterEmergency; aside says the caller is a goroutine
// beside the boot sequence (or may be: kmod's OnPanic), which goes on
// until its next check, so the policy must not read what it writes
// (failureReport).
func (b *boot) startEmergency(err error, aside bool) {
	g := b.guard()
	g.mu.Lock()
	if g.active {
		g.mu.Unlock()
		g.park()
		return
	}
	if g.switching {
		g.mu.Unlock()
		b.log.Errorf("%v: the root is being switched; the emergency policy is left to the switch's failure", err)
		g.park()
		return
	}
	g.active = true
	g.aside = aside
	g.mu.Unlock()
	b.prog.end() // the emergency policy says what it waits for
	defer func() {
		if r := recover(); r != nil {
			b.log.Errorf("panic during the emergency: %v\n%s", r, debug.Stack())
			g.halt(fmt.Sprintf("panic during the emergency: %v; halting", r))
		}
	}()
	g.emergency(err)
}

// parkIfFailed parks the boot sequence once the emergency policy has
// started: after a wait for goroutines, one of which may have panicked.
func (b *boot) parkIfFailed() {
	if b.failed() {
		b.guard().park()
	}
}

// switching runs fn, the switch of root, unless the emergency policy has
// started (the sequence parks then): a goroutine's panic meanwhile no
// longer starts the policy beside the exec, while a failure or a panic of
// fn itself (its endSwitch deferred, it runs before the recovery) does.
func (b *boot) switching(fn func() error) error {
	if !b.beginSwitch() {
		b.guard().park() // a goroutine's panic started the emergency policy
	}
	defer b.endSwitch()
	return fn()
}

// beginSwitch ends the boot sequence's checks before switch_root: false
// when the emergency policy has started (the sequence must park), else
// from now on a goroutine's panic no longer starts it (endSwitch, when the
// exec failed, gives it back).
func (b *boot) beginSwitch() bool {
	g := b.guard()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active {
		return false
	}
	g.switching = true
	return true
}

// endSwitch says the switch failed: the sequence goes to the emergency.
func (b *boot) endSwitch() {
	g := b.guard()
	g.mu.Lock()
	g.switching = false
	g.mu.Unlock()
}

// panicked is where every goroutine of PID 1 reports a panic it recovered
// (where names it): the boot ends in the emergency policy, or halts when
// the emergency was already running. The boot sequence's own panic is
// sequencePanicked.
func (b *boot) panicked(where string, r any) { b.panickedIn(where, r, true) }

// sequencePanicked is panicked for the boot sequence's goroutine.
func (b *boot) sequencePanicked(where string, r any) { b.panickedIn(where, r, false) }

func (b *boot) panickedIn(where string, r any, aside bool) {
	b.log.Errorf("panic in %s: %v\n%s", where, r, debug.Stack())
	if b.failed() {
		b.guard().halt(fmt.Sprintf("panic in %s during the emergency: %v; halting", where, r))
		return
	}
	b.startEmergency(fmt.Errorf("internal error (panic in %s): %v", where, r), aside)
}

// goSafe runs f in a goroutine whose panic is reported with panicked.
func (b *boot) goSafe(where string, f func()) { b.goSafeThen(where, f, nil) }

// goSafeThen is goSafe, then then (what releases those who wait for f)
// once f returned. A panic in f never runs then: a deferred release inside
// f would run before the recovery, and let the boot sequence go on before
// the emergency policy had started; whatever waits for f waits for ever
// instead, while the policy runs.
func (b *boot) goSafeThen(where string, f, then func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				b.panicked(where, r)
			}
		}()
		f()
		if then != nil {
			then()
		}
	}()
}
