package main

import (
	"fmt"

	"github.com/keel-boot/keel/slots"
)

// runMarkGood confirms the running boot: the booted slot stops using up
// tries. keel-mark-good.service runs it once boot-complete.target is
// reached. It is idempotent.
func runMarkGood(e *env, args []string) error {
	fs := newFlags(e, "mark-good")
	t := targetFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	x, err := t.markGoodSlot(pos)
	if err != nil {
		return err
	}
	if x == "" {
		fmt.Fprintln(e.stdout, "this boot did not come from an A/B slot (boot report mode is not \"slot\"): nothing to mark good")
		return nil
	}
	var was slots.SlotState
	s, err := t.withState(func(s *slots.State) error {
		was = s.Slot(x)
		return s.MarkGood(x)
	})
	if err != nil {
		return err
	}
	if was.Good && was.Reason == "" {
		fmt.Fprintf(e.stdout, "slot %s is already good (%s)\n", x, s.Slot(x))
		return nil
	}
	fmt.Fprintf(e.stdout, "slot %s marked good (%s)\n", x, s.Slot(x))
	return nil
}

// markGoodSlot is the slot to mark: the running one, or on a disk image
// the one named. "" means the system did not boot from a slot.
func (t *target) markGoodSlot(pos []string) (slots.Slot, error) {
	run, err := t.running()
	if err != nil {
		return "", err
	}
	if len(pos) == 0 {
		if run == "" && t.disk != "" {
			return "", usagef("a disk image runs no slot: name the slot to mark good")
		}
		return run, nil
	}
	x, err := slotArg(pos)
	if err != nil {
		return "", err
	}
	if t.disk == "" && x != run {
		return "", fmt.Errorf("slot %s is not the running slot (%s): mark-good confirms the boot that is running", x, orNone(run))
	}
	return x, nil
}

func orNone(x slots.Slot) string {
	if x == "" {
		return "none"
	}
	return string(x)
}
