// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/slots"
)

// runSetNext puts a slot on trial: it boots next and must be marked good
// within --tries boots, else the other slot boots again. The only good slot
// stays good (bootstate.SetNext).
func runSetNext(e *env, args []string) error {
	fs := newFlags(e, "set-next")
	t := targetFlags(e, fs)
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
	h, err := t.checkHeader(x)
	if err != nil {
		return err
	}
	// A locked init refuses an image below the rollback floor, so on a
	// locked machine the trial would only retire the slot (found by a
	// hunting helper). Unlocked, it boots one with a warning: a rollback
	// to a formerly good image of a lower index stays possible.
	// Without a boot report (a disk image: --disk) whether the machine's
	// initramfs is locked is unknown: the trial is set, and the image's
	// place below the floor said.
	r, _ := t.bootReport()
	locked := r != nil && r.Locked
	var below error
	var note string
	s, err := t.withState(func(s *bootstate.State) error {
		below, note = t.belowFloor(h, s.RollbackFloor, string(x.VerityLabel()), nil)
		if locked && below != nil {
			return fmt.Errorf("%w: this machine's initramfs is locked and would refuse it: refusing to boot slot %s next", below, x)
		}
		return s.SetNext(x, *tries, h.ImageID)
	})
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintf(e.stdout, "%s\n", note)
	}
	if below != nil && r == nil {
		fmt.Fprintf(e.stderr, "slotctl set-next: warning: %v: a locked initramfs refuses to boot it, and the trial then only retires slot %s (--boot-report names the machine's report, to refuse here)\n", below, x)
	}
	printNext(e, s, x)
	return nil
}

// checkHeader refuses to put a slot on trial whose verity partition holds
// no valid header: the boot would only fail and mark it bad again.
func (t *target) checkHeader(x slots.Slot) (*slots.Header, error) {
	p, err := t.open(x.VerityLabel(), false)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	h, err := slots.ReadHeader(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: refusing to boot slot %s (slotctl install writes a slot)", p, err, x)
	}
	return h, nil
}

func printNext(e *env, s bootstate.State, x slots.Slot) {
	switch {
	case s.Slot(x).Good && !s.Slot(x.Other()).Good: // bootstate.SetNext
		fmt.Fprintf(e.stdout, "slot %s boots next: it stays good, as the only good slot\n", x)
	case s.Slot(x).Good: // RAUC's set-primary of the running good slot
		fmt.Fprintf(e.stdout, "slot %s boots next: it stays good\n", x)
	default:
		fmt.Fprintf(e.stdout, "slot %s boots next: %d tries to be marked good\n", x, s.Slot(x).Tries)
	}
	if o := x.Other(); s.Bootable(o) {
		fmt.Fprintf(e.stdout, "fallback: slot %s (%s)\n", o, s.Slot(o))
	} else {
		fmt.Fprintf(e.stdout, "no fallback: slot %s cannot boot (%s)\n", o, s.Slot(o))
	}
}
