package slots

import (
	"errors"
	"fmt"
)

// Failure is a slot that failed in the initramfs during this boot.
type Failure struct {
	Slot   Slot
	Reason string
}

// Selection is the outcome of Select, for the boot report.
type Selection struct {
	// Choice is the slot that booted; its Slot is empty when none did.
	Choice Choice
	// Fallbacks are the slots that failed before, in order.
	Fallbacks []Failure
	// Warnings are boot state problems worth reporting: a torn or invalid
	// copy, defaults in use, a state that could not be saved.
	Warnings []string
	// State is the boot state as last saved (or as it would have been).
	State State
}

// Select runs boot counting in the initramfs: it loads the state from st,
// chooses a slot (see State.Choose), persists the decrement, and calls try,
// which prepares that slot's root (verity, mount, init present) and returns
// nil or why it failed. A slot that fails is marked bad with that reason and
// the other slot is tried in the same boot. A forced slot that fails is not
// marked (slot= leaves the counters alone) and nothing else is tried.
//
// A slot that is not yet good is only booted once its decrement is durable:
// if the state cannot be saved, that try could not be counted and a slot
// that crashes the machine would boot forever, so it fails instead with the
// save error as its reason. A good slot boots even when the state cannot
// be saved.
//
// A store that cannot be read at all yields the defaults, with the error as
// a warning. The error wraps ErrNoBootableSlot when no slot booted;
// Selection is meaningful with it.
func Select(st Store, forced Slot, try func(Choice) error) (Selection, error) {
	state, warnings, err := Load(st)
	sel := Selection{Warnings: warnings}
	if err != nil {
		sel.Warnings = append(sel.Warnings, err.Error())
	}
	var excluded []Slot
	for {
		c, err := state.Choose(forced, excluded...)
		saveErr := saveIf(st, &state, c.Changed)
		sel.State = state
		if err != nil {
			sel.warn(saveErr)
			return sel, err
		}
		tried, failed := sel.attempt(c, saveErr, try)
		if failed == nil {
			sel.Choice = c
			return sel, nil
		}
		// A slot that could not be tried (its try not countable) is only
		// skipped: an unwritable bootstate says nothing about the image.
		if tried && !c.Forced {
			sel.warn(markBad(st, &state, c.Slot, failed))
			sel.State = state
		}
		excluded = append(excluded, c.Slot)
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
		sel.Fallbacks = append(sel.Fallbacks, Failure{Slot: c.Slot, Reason: err.Error()})
	}
	return tried, err
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
