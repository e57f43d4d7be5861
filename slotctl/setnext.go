// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/slots"
)

// runSetNext puts a slot on trial: it boots next and must be marked good
// within --tries boots, else the other slot boots again.
func runSetNext(e *env, args []string) error {
	fs := newFlags(e, "set-next")
	t := targetFlags(fs)
	tries := fs.Int("tries", bootstate.DefaultTries, "boots the slot gets to be marked good (1 to 255)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	x, err := slotArg(pos)
	if err != nil {
		return err
	}
	if *tries < 1 || *tries > 255 {
		return usagef("--tries %d: expected 1 to 255", *tries)
	}
	if err := t.refuseRunning(x, "set-next"); err != nil {
		return err
	}
	if err := t.checkHeader(x); err != nil {
		return err
	}
	s, err := t.withState(func(s *bootstate.State) error { return s.SetNext(x, *tries) })
	if err != nil {
		return err
	}
	printNext(e, s, x)
	return nil
}

// checkHeader refuses to put a slot on trial whose verity partition holds
// no valid header: the boot would only fail and mark it bad again.
func (t *target) checkHeader(x slots.Slot) error {
	p, err := t.open(x.VerityLabel(), false)
	if err != nil {
		return err
	}
	defer p.Close()
	if _, err := slots.ReadHeader(p); err != nil {
		return fmt.Errorf("%s: %w: refusing to boot slot %s (slotctl install writes a slot)", p, err, x)
	}
	return nil
}

func printNext(e *env, s bootstate.State, x slots.Slot) {
	if s.Slot(x).Good { // the only good slot stays good (bootstate.SetNext)
		fmt.Fprintf(e.stdout, "slot %s boots next: it stays good, as the only good slot\n", x)
	} else {
		fmt.Fprintf(e.stdout, "slot %s boots next: %d tries to be marked good\n", x, s.Slot(x).Tries)
	}
	if o := x.Other(); s.Bootable(o) {
		fmt.Fprintf(e.stdout, "fallback: slot %s (%s)\n", o, s.Slot(o))
	} else {
		fmt.Fprintf(e.stdout, "no fallback: slot %s cannot boot (%s)\n", o, s.Slot(o))
	}
}
