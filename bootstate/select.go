// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"errors"
	"fmt"
	"slices"
)

// Failure is a slot that failed in the initramfs during this boot.
type Failure struct {
	Slot   Slot
	Class  Class
	Reason string
	// Retired is true when the failure marked the slot bad.
	Retired bool
}

// Request is what the init asks of Select besides the state.
type Request struct {
	// Forced is slot= ("" for boot counting).
	Forced Slot
	// MaxUnconfirmed is how many boots of a good slot may go unconfirmed
	// before it is demoted; 0 means DefaultMaxUnconfirmed.
	MaxUnconfirmed int
	// DataUsed records that this boot uses a data partition (State.DataSeen),
	// in the same write as the choice. Its mount, counted in
	// State.UnfinishedDataMounts, stays counted until the attempts returned:
	// try prepares the data partition for the new root too.
	DataUsed bool
	// PreferGood chooses a good slot over a slot on trial of higher
	// priority. The init sets it when it leaves the data partition alone
	// because the last boots never finished with it
	// (State.DataMountUnfinished): those boots may have been restarted by
	// the trial's own image (dm-verity's restart_on_corruption on a block
	// the /var seed or the /etc merge read), and a boot of the trial
	// without the data partition, which skips those reads, could confirm
	// it. The good slot boots instead; the trial's next boot, with the
	// data partition, spends its next try.
	PreferGood bool
	// InMemory says the state is counted in memory in this boot (no
	// bootstate partition could be used): a try of a slot on trial is
	// forgotten with the boot, so no good slot is demoted below one (a
	// trial that crashes the machine would be booted for ever), only below
	// the other good slot.
	InMemory bool
	// AfterAttempts, when set, runs once the attempts returned, before the
	// write that ends the data mount: the init unmounts there what an
	// attempt left of the data partition, so that a hang in it is counted.
	AfterAttempts func()
}

// Selection is the outcome of Select, for the boot report.
type Selection struct {
	// Choice is the slot that booted; its Slot is empty when none did.
	Choice Choice
	// Fallbacks are the slots that failed before, in order.
	Fallbacks []Failure
	// Warnings are boot state problems worth reporting: a state that could
	// not be saved, a last good slot kept despite an image fault.
	Warnings []string
	// State is the boot state as last saved (or as it would have been).
	State State

	// pending are good slots with an image fault in this boot, retired
	// only once another slot has booted.
	pending []pendingRetire
}

// pendingRetire is a good slot to retire once another slot boots: the index
// of its failure in Fallbacks, and the failure.
type pendingRetire struct {
	slot   Slot
	i      int
	failed error
}

// Select runs boot counting in the initramfs over state, as Load read it
// from st: it chooses a slot (see State.Choose), persists that choice, and
// calls try, which prepares that slot's root (verity, mount, init present)
// and returns nil or why it failed, classified (Fault). An image fault
// marks the slot bad (unless it is the last good slot); an environment
// fault leaves it as it was. Either way the other slot is tried in the
// same boot. A forced slot that fails is not marked and nothing else is
// tried. Once the attempts returned, one more write ends the data mount
// the boot counted (State.UnfinishedDataMounts) and retires the good slots
// an image fault retires.
//
// A slot that is not yet good is only booted once its decrement is durable:
// if the state cannot be saved, that try could not be counted and a slot
// that crashes the machine would boot forever, so it fails instead with the
// save error as its reason. A good slot boots even when the state cannot
// be saved.
//
// The error wraps ErrNoBootableSlot when no slot booted; Selection is
// meaningful with it.
func Select(st Store, state State, req Request, try func(Choice) error) (Selection, error) {
	var sel Selection
	var excluded []Slot
	for {
		before := state
		c, err := state.choose(req, excluded)
		changed := c.Changed
		if req.DataUsed && !state.DataSeen && !c.Forced {
			state.DataSeen, changed = true, true
		}
		if err != nil {
			req.afterAttempts()
		}
		if req.Forced == "" && state.UnfinishedDataMounts != 0 && (!req.DataUsed || err != nil) {
			// The data partition's part in this boot is over: it was
			// left alone, or every attempt returned.
			state.UnfinishedDataMounts, changed = 0, true
		}
		saveErr := saveIf(st, &state, changed)
		sel.State = state
		if err != nil {
			sel.warn(saveErr)
			for _, p := range sel.pending {
				sel.Warnings = append(sel.Warnings, fmt.Sprintf("slot %s is good: kept despite an image fault (%v), since no other slot booted in this boot", p.slot, p.failed))
			}
			return sel, err
		}
		tried, failed := sel.attempt(c, saveErr, try)
		if failed == nil {
			sel.Choice = c
			sel.end(st, &state, req)
			return sel, nil
		}
		// A slot that could not be tried (its try not countable) is only
		// skipped: an unwritable bootstate says nothing about the image.
		// It gets back the try charged in memory, which the next write
		// (the other slot's count) would store: a trial on its last try
		// was then retired, never attempted (found by a hunting helper).
		if tried && !c.Forced {
			sel.settle(st, &state, before.Slot(c.Slot), c.Slot, failed, excluded)
		} else if !tried {
			p, _ := state.slot(c.Slot)
			prev := before.Slot(c.Slot)
			p.Tries, p.Unconfirmed = prev.Tries, prev.Unconfirmed
		}
		excluded = append(excluded, c.Slot)
	}
}

// end records, once a slot booted, what the boot learned after the
// choice, in one write: the good slots that failed with an image fault
// before it are retired, and the data partition's work in the new root
// (the /var seed, the /etc merge, the upper, the binds) returned, which
// ends the mount BeginDataMount counted. Until then the count stands, so a
// boot that hangs in that work is counted like one that hangs in the mount
// (docs/boot-sequence.md, "A mount that never returns").
func (sel *Selection) end(st Store, s *State, req Request) {
	req.afterAttempts()
	changed := false
	for _, p := range sel.pending {
		sel.Fallbacks[p.i].Retired = true
		if err := s.MarkBad(p.slot, p.failed.Error()); err != nil {
			sel.warn(errors.Join(p.failed, err))
			continue
		}
		changed = true
	}
	if req.Forced == "" && s.UnfinishedDataMounts != 0 {
		s.UnfinishedDataMounts, changed = 0, true
	}
	sel.warn(saveIf(st, s, changed))
	sel.State = *s
}

func (req Request) afterAttempts() {
	if req.AfterAttempts != nil {
		req.AfterAttempts()
	}
}

// attempt tries one choice, records its failure and reports whether try
// ran at all.
func (sel *Selection) attempt(c Choice, saveErr error, try func(Choice) error) (tried bool, err error) {
	if saveErr != nil && !c.Good {
		err = fmt.Errorf("boot state not saved, so this try of a slot not yet good cannot be counted: %w", saveErr)
	} else {
		sel.warn(saveErr)
		err, tried = try(c), true
	}
	if err != nil {
		sel.Fallbacks = append(sel.Fallbacks, Failure{Slot: c.Slot, Class: ClassOf(err), Reason: err.Error()})
	}
	return tried, err
}

// settle records a failed attempt of slot x, whose state before this
// boot's count was prev. An environment fault gives the slot back the try
// or the unconfirmed boot it was charged: the attempt returned, so it was
// neither a hang nor a crash, and it proves nothing about the image. An
// image fault marks the slot bad, unless x is the last good slot: the init
// never gives up the only image that worked. A slot that already failed in
// this boot (excluded) is no alternative: a good slot whose environment
// fault may pass by the next boot does not make the other good slot
// expendable; and a good slot is retired only once the other has booted
// (Select), so that the order of the two failures does not matter.
func (sel *Selection) settle(st Store, s *State, prev SlotState, x Slot, failed error, excluded []Slot) {
	if ClassOf(failed) != Image {
		p, _ := s.slot(x)
		if p.Tries != prev.Tries || p.Unconfirmed != prev.Unconfirmed {
			p.Tries, p.Unconfirmed = prev.Tries, prev.Unconfirmed
			sel.warn(Save(st, s))
			sel.State = *s
		}
		return
	}
	if s.lastGoodStanding(x, excluded) {
		sel.Warnings = append(sel.Warnings, fmt.Sprintf("slot %s is the last good slot: kept despite an image fault (%v)", x, failed))
		return
	}
	if s.Slot(x).Good {
		// The other good slot has not booted yet: should it fail too (a
		// late disk), x must still be there at the next boot.
		sel.pending = append(sel.pending, pendingRetire{slot: x, i: len(sel.Fallbacks) - 1, failed: failed})
		return
	}
	sel.Fallbacks[len(sel.Fallbacks)-1].Retired = true
	sel.warn(markBad(st, s, x, failed))
	sel.State = *s
}

// lastGoodStanding reports whether x is good and the other slot is not a
// good, bootable alternative that has not failed in this boot.
func (s State) lastGoodStanding(x Slot, excluded []Slot) bool {
	p, o := s.Slot(x), s.Slot(x.Other())
	return p.Good && !(o.Good && o.Bootable() && !slices.Contains(excluded, x.Other()))
}

func (sel *Selection) warn(err error) {
	if err != nil {
		sel.Warnings = append(sel.Warnings, err.Error())
	}
}

// saveIf saves the state when it changed.
func saveIf(st Store, s *State, changed bool) error {
	if !changed {
		return nil
	}
	return Save(st, s)
}

// markBad retires slot x with the reason it failed and saves.
func markBad(st Store, s *State, x Slot, failed error) error {
	if err := s.MarkBad(x, failed.Error()); err != nil {
		return errors.Join(failed, err)
	}
	return Save(st, s)
}
