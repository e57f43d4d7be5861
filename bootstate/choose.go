// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNoBootableSlot is wrapped by Choose when no slot may boot; the message
// gives each slot's state and reason.
var ErrNoBootableSlot = errors.New("no bootable slot")

// ReasonTriesExhausted is the reason of a slot whose tries ran out before
// any boot of it was marked good: the automatic rollback.
const ReasonTriesExhausted = "tries exhausted: never marked good"

// ReasonRestoredGood is the reason of the slot that Restore made a trial
// though the data partition's copy called it good: the copy names no image
// for it, so it may hold the image that worked or one written since. A
// good slot whose boots go unconfirmed is demoted below such a slot, as
// below a good one (demote); below any other trial it is not. The mark
// stays through the slot's tries and the demotion's swap of priorities;
// mark-good or mark-bad of the slot (an install marks it bad first),
// set-next of either slot, RAUC's set-primary of the running one, and the
// end of its tries (retireExhausted) end it.
const ReasonRestoredGood = "good in the data partition's copy of the boot state, which names no image for it: restored as a trial"

// Choice is the slot boot counting picked and why.
type Choice struct {
	Slot Slot
	// Reason says why, for the boot report and the console.
	Reason string
	// Good is the slot's good flag; TriesLeft its tries counter after this
	// boot's decrement (for a good slot it is not used); Unconfirmed the
	// good slot's unconfirmed boots, this one included.
	Good        bool
	TriesLeft   int
	Unconfirmed int
	// Demoted names the slot demoted in this choice because its boots went
	// unconfirmed too often ("" when none was).
	Demoted Slot
	// Forced is true when slot= chose the slot; counting was not touched.
	Forced bool
	// Changed reports that Choose modified the state, which must then be
	// saved before anything is mounted. It is meaningful with an error too.
	Changed bool
}

// Choose picks the slot to boot. A forced slot (slot= on the command line)
// is chosen as is and the counters are left alone. Otherwise:
//   - a slot with a priority but neither good nor tries left is retired
//     (priority 0, ReasonTriesExhausted);
//   - a good slot whose last maxUnconfirmed boots were never confirmed is
//     demoted below the other slot when that one is good, or a trial that
//     was good in the data partition's copy (demote);
//   - the bootable slot with the highest priority that is not in exclude
//     (the slots that already failed in this boot) is chosen, a on a tie;
//     with none, a good slot at priority 0 that is not excluded;
//   - a slot not yet good has its tries decremented, a good slot its
//     unconfirmed boots incremented: the caller must persist the state
//     (Choice.Changed) before mounting anything, so that a boot that never
//     completes is counted.
//
// maxUnconfirmed 0 means DefaultMaxUnconfirmed.
func (s *State) Choose(forced Slot, maxUnconfirmed int, exclude ...Slot) (Choice, error) {
	return s.choose(Request{Forced: forced, MaxUnconfirmed: maxUnconfirmed}, exclude)
}

// choose is Choose with what Select asks besides: with req.PreferGood a
// good slot is chosen over a slot on trial of higher priority, and with it
// or req.InMemory no good slot is demoted below a slot on trial (it would
// boot all the same, or the trial's try could not be counted).
func (s *State) choose(req Request, exclude []Slot) (Choice, error) {
	if req.Forced != "" {
		return s.chooseForced(req.Forced, exclude)
	}
	changed := s.retireExhausted()
	demoted := s.demote(req.MaxUnconfirmed, !req.InMemory && !req.PreferGood, exclude)
	var reason string
	x, ok := s.best(exclude)
	if ok && req.PreferGood && !s.Slot(x).Good {
		if g, gok := s.best(append(slices.Clone(exclude), x)); gok && s.Slot(g).Good {
			reason = fmt.Sprintf("%s is good: it boots before %s, on trial, while the data partition is left alone", g, x)
			x = g
		}
	}
	if ok && reason == "" {
		reason = s.why(x, exclude)
	} else if !ok {
		// A good slot left at priority 0 (a retired slot booted with
		// slot= and marked good, which MarkGood leaves retired) is the
		// last resort: a slot that worked is never given up for none.
		if x, ok = s.goodRetired(exclude); !ok {
			return Choice{Changed: changed || demoted != ""}, s.noBootable(exclude)
		}
		reason = fmt.Sprintf("last resort: no slot can boot by its priority; %s is good (%s)", x, s.Slot(x))
	}
	p, _ := s.slot(x)
	c := Choice{Slot: x, Good: p.Good, Changed: true, Demoted: demoted, Reason: reason}
	if demoted != "" {
		c.Reason = fmt.Sprintf("%s demoted: %s; %s", demoted, s.Slot(demoted).Reason, c.Reason)
	}
	if p.Good {
		p.Unconfirmed = min(p.Unconfirmed+1, 255)
		c.Unconfirmed = int(p.Unconfirmed)
		c.Reason += fmt.Sprintf(", good (boot %d since the last mark-good)", p.Unconfirmed)
	} else {
		p.Tries--
		c.Reason += fmt.Sprintf(", not yet good: %s", triesLeft(p.Tries))
	}
	c.TriesLeft = int(p.Tries)
	return c, nil
}

// demote lowers a good slot whose boots went unconfirmed maxUnconfirmed
// times in a row below the other slot, when that one is bootable, not
// excluded, and good, or (toTrial) a trial Restore made of a slot the data
// partition's copy called good (ReasonRestoredGood): the machine then runs
// the other image that worked, or tries the one that may still be it. The
// demoted slot keeps its good flag, so it boots again once such a trial's
// tries ran out, and it is never given up for none. After a restore, a
// last good image that crashed after switch_root at every boot (a corrupt
// block deep in it) used to be booted for ever, the other slot never tried
// (found by a hunting helper). Below any other trial a good slot is not
// demoted: an update rolled back from (set-next of the good slot), or
// whatever a new machine's other slot holds, would boot because a health
// check failed or the power was cut three times, and once confirmed take
// the last good image and the rollback floor (found in review). Without
// toTrial (counting in memory, where a trial's try is forgotten with the
// boot) only a good slot is an alternative. It returns the demoted slot,
// "" if none.
func (s *State) demote(maxUnconfirmed int, toTrial bool, exclude []Slot) Slot {
	if maxUnconfirmed <= 0 {
		maxUnconfirmed = DefaultMaxUnconfirmed
	}
	for _, x := range Slots() {
		p, _ := s.slot(x)
		o, _ := s.slot(x.Other())
		if !p.Good || p.Priority == 0 || int(p.Unconfirmed) < maxUnconfirmed || p.Priority < o.Priority {
			continue
		}
		if !o.Bootable() || slices.Contains(exclude, x.Other()) || !o.Good && (!toTrial || o.Reason != ReasonRestoredGood) {
			continue
		}
		p.Reason = fmt.Sprintf("demoted: %d boots in a row were not confirmed (mark-good)", p.Unconfirmed)
		p.Priority, o.Priority, p.Unconfirmed = 1, 2, 0
		return x
	}
	return ""
}

func (s *State) chooseForced(x Slot, exclude []Slot) (Choice, error) {
	p, err := s.slot(x)
	if err != nil {
		return Choice{}, fmt.Errorf("slot=%s: %w", x, err)
	}
	if slices.Contains(exclude, x) {
		return Choice{}, fmt.Errorf("%w: slot=%s is forced on the command line and failed in this boot; boot counting is not used with slot=", ErrNoBootableSlot, x)
	}
	return Choice{Slot: x, Reason: "forced by slot=" + string(x), Good: p.Good, TriesLeft: int(p.Tries), Forced: true}, nil
}

// CheckForced says why boot counting would not boot slot x, nil if it
// would: a locked init honours slot= only for such a slot.
func (s State) CheckForced(x Slot) error {
	p, err := s.slot(x)
	if err != nil {
		return err
	}
	if !p.Bootable() {
		return fmt.Errorf("slot %s cannot boot by boot counting (%s)", x, p)
	}
	return nil
}

// ReasonRestoredUnconfirmed is the reason of a trial ReasonRestoredGood
// marked whose tries ran out unconfirmed while the other slot is good: it
// is the fallback again, once, as it was before it was tried.
const ReasonRestoredUnconfirmed = "good in the data partition's copy of the boot state, tried after a restore and never confirmed: the fallback"

// retireExhausted gives priority 0 to the slots that may no longer boot.
// A trial a restore marked (ReasonRestoredGood) whose tries ran out while
// the other slot is good and bootable is made the fallback instead, once:
// below the good slot, unmarked (ReasonRestoredUnconfirmed, so nothing is
// demoted below it again), with DefaultTries. Its tries may have been
// spent by boots left unconfirmed by the environment (a health check's
// network down), not by its image; retired, a slot the copy called good
// was no fallback when the good slot then failed in the initramfs (found
// in review). Its next tries, taken only as a fallback, retire it.
func (s *State) retireExhausted() bool {
	changed := false
	for i := range s.Slots {
		p, o := &s.Slots[i], &s.Slots[1-i]
		switch {
		case p.Priority == 0 || p.Bootable():
		case p.Reason == ReasonRestoredGood && o.Good && o.Bootable():
			p.Priority, p.Tries, p.Reason = 1, DefaultTries, ReasonRestoredUnconfirmed
			o.Priority = max(o.Priority, 2)
			changed = true
		default:
			p.Priority, p.Reason = 0, ReasonTriesExhausted
			changed = true
		}
	}
	return changed
}

// best returns the bootable slot with the highest priority, a on a tie.
func (s *State) best(exclude []Slot) (Slot, bool) {
	var found Slot
	for _, x := range Slots() {
		if !s.Bootable(x) || slices.Contains(exclude, x) {
			continue
		}
		if found == "" || s.Slot(x).Priority > s.Slot(found).Priority {
			found = x
		}
	}
	return found, found != ""
}

// Boots reports whether boot counting may choose x at all: x is bootable,
// or good at priority 0 when no slot is bootable (the last resort of
// Choose).
func (s State) Boots(x Slot) bool {
	if s.Bootable(x) {
		return true
	}
	if _, ok := s.best(nil); ok {
		return false
	}
	y, ok := s.goodRetired(nil)
	return ok && y == x
}

// goodRetired returns a good slot at priority 0 that is not excluded.
func (s *State) goodRetired(exclude []Slot) (Slot, bool) {
	for _, x := range Slots() {
		if p := s.Slot(x); p.Good && p.Priority == 0 && !slices.Contains(exclude, x) {
			return x, true
		}
	}
	return "", false
}

// why explains why x was chosen over the other slot.
func (s *State) why(x Slot, exclude []Slot) string {
	o := x.Other()
	prio := s.Slot(x).Priority
	switch {
	case slices.Contains(exclude, o):
		return fmt.Sprintf("fallback: %s failed in this boot; %s has priority %d", o, x, prio)
	case !s.Bootable(o):
		return fmt.Sprintf("%s cannot boot (%s); %s has priority %d", o, s.Slot(o), x, prio)
	}
	return fmt.Sprintf("highest priority (%d)", prio)
}

func triesLeft(n uint8) string {
	if n == 1 {
		return "1 try left"
	}
	return fmt.Sprintf("%d tries left", n)
}

// noBootable builds the error listing why each slot cannot boot.
func (s *State) noBootable(exclude []Slot) error {
	parts := make([]string, 0, 2)
	for _, x := range Slots() {
		note := s.Slot(x).String()
		if slices.Contains(exclude, x) {
			note = "failed in this boot: " + note
		}
		parts = append(parts, fmt.Sprintf("%s: %s", x, note))
	}
	return fmt.Errorf("%w: %s", ErrNoBootableSlot, strings.Join(parts, "; "))
}
