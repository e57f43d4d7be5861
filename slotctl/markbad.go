// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"

	"github.com/keel-boot/keel/bootstate"
)

// runMarkBad retires a slot: boot counting never chooses it again until
// set-next or install.
func runMarkBad(e *env, args []string) error {
	fs := newFlags(e, "mark-bad")
	t := targetFlags(e, fs)
	reason := fs.String("reason", "marked bad by slotctl mark-bad", "why, shown by slotctl status")
	force := fs.Bool("force", false, "retire the slot even if it is the only good one while the running slot is unconfirmed")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	x, err := slotArg(pos)
	if err != nil {
		return err
	}
	if err := t.refuseRunning(x, "mark bad"); err != nil {
		return err
	}
	if err := t.refuseLastGood(x, "mark bad", *force); err != nil {
		return err
	}
	s, err := t.withState(func(s *bootstate.State) error { return s.MarkBad(x, *reason) })
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "slot %s marked bad (%s)\n", x, s.Slot(x))
	return nil
}
