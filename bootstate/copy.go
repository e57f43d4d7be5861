// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"errors"
	"fmt"
	"io"
)

// CopyName is the file, at the top of the data partition, that holds a
// copy of the boot state as slotctl last saved it: one record, exactly as
// on the bootstate partition (docs/formats.md, "The data partition's
// copy"). The init reads it only when the bootstate partition cannot be
// read in a boot (FromCopy) or holds no boot's knowledge (Pristine,
// Restore), and never writes it.
const CopyName = ".keel-bootstate"

// ReadCopy reads the copy's record from r: exactly RecordSize bytes that
// ParseRecord accepts. Anything else is an error naming what was wrong.
func ReadCopy(r io.Reader) (State, error) {
	b := make([]byte, RecordSize+1)
	n, err := io.ReadFull(r, b)
	switch {
	case n > RecordSize:
		return State{}, fmt.Errorf("boot state copy: more than %d bytes, expected one record", RecordSize)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		if n != RecordSize {
			return State{}, fmt.Errorf("boot state copy: %d bytes, expected one record of %d", n, RecordSize)
		}
	case err != nil:
		return State{}, fmt.Errorf("boot state copy: %w", err)
	}
	return ParseRecord(b[:RecordSize])
}

// FromCopy is the state a boot counts in memory from when the machine's
// bootstate partition cannot be read, or its state was lost (garbage where
// its records were: ErrGarbage), but the data partition's copy can be read
// (docs/formats.md, "The data partition's copy"): the copy's slots,
// rollback floor and last good image, so that a slot retired or demoted
// there stays so, and the floor still holds. When the copy has a good slot
// that can boot, every bootable slot that is not good is held back: ranked
// below every good one, tried only if they all fail in this boot. A try
// counted in memory is forgotten at the next boot, so a trial chosen first
// that crashes the machine would be booted for ever, while the good slot
// worked; the update is tried first again once the bootstate partition can
// be read. FromCopy returns the held-back slots. A copy with no bootable
// good slot is used as it is.
//
// Seq is 0 and Initialised false: this is the state of a memory store,
// never written back, and nothing that needs the state as stored (the /etc
// merge's last good image, setting a trial's upper aside) takes it for
// that.
func FromCopy(c State) (State, []Slot) {
	s := c
	s.Seq, s.Initialised, s.UnfinishedDataMounts = 0, false, 0
	if !s.goodBootable() {
		return s, nil
	}
	var held []Slot
	for i, x := range Slots() {
		p := &s.Slots[i]
		switch {
		case !p.Bootable():
		case p.Good:
			p.Priority = max(p.Priority, p.Priority+1) // above 1, in their order
		default:
			p.Priority = 1
			held = append(held, x)
		}
	}
	return s, held
}

// Rewritten is the copy c with its last good slot taken for a trial when
// that slot no longer holds the image the copy names (now: the image id in
// the slot's authenticated header; the caller leaves the copy as it is when
// the header cannot be read, the slot's attempt failing on it): the slot was
// written after the copy, whose own write failed (a full data partition
// makes it a warning), so its image was never confirmed. The copy still
// calling it good would boot it first at every boot counted from the copy,
// crash and all, while the other good slot worked. It stays bootable, with
// one try, and FromCopy holds it back behind a good slot. It reports
// whether it changed c.
func Rewritten(c State, now string) (State, bool) {
	lg := c.LastGood
	if lg.Slot == "" || now == lg.ImageID {
		return c, false
	}
	p, err := c.slot(lg.Slot)
	if err != nil || !p.Good {
		return c, false
	}
	p.Good, p.Unconfirmed, p.Tries = false, 0, max(p.Tries, 1)
	return c, true
}

// goodBootable reports whether a good slot can be chosen by its priority.
func (s State) goodBootable() bool {
	for _, x := range s.Slots {
		if x.Good && x.Bootable() {
			return true
		}
	}
	return false
}

// Pristine reports whether the state holds nothing a boot learned: the
// defaults but for the sequence and the count of unfinished data mounts.
// That is a blank partition read (or one with both records damaged), and
// the same after a boot that wrote only the count of its data mount and
// went no further (power cut, hang): no slot was chosen since.
func (s State) Pristine() bool {
	return s.Slots == DefaultState().Slots && s.RollbackFloor == 0 && !s.DataSeen && s.LastGood == (LastGood{})
}

// Restore is the state a pristine bootstate partition (cur) starts again
// from with the data partition's copy c, once the caller has checked that
// the image c names as last good is still in its slot (docs/formats.md,
// "The data partition's copy"): c's last good image, rollback floor and
// that slot's entry, the slot ranked first when it can boot, its count of
// unconfirmed boots started again (a count the copy carries at the limit
// would demote it at once); the other slot, for which the copy names no
// image (it may have been rewritten since, or the copy be older than a
// later change), a trial below it, with DefaultTries. When the copy called
// that slot good, or a copy written after an earlier restore still carries
// that restore's mark on it, its reason says so (ReasonRestoredGood): the
// copy knows no more of it than at the first restore. Should the last
// good image's boots go unconfirmed, it is demoted below that trial as
// below a good slot (State.Choose). cur's sequence and count of unfinished
// data mounts stay, and the state is durable again (Initialised). It
// reports false, and returns cur, when c names no last good slot.
func Restore(c, cur State) (State, bool) {
	lg, err := index(c.LastGood.Slot)
	if err != nil {
		return cur, false
	}
	s := cur
	s.RollbackFloor, s.LastGood, s.DataSeen, s.Initialised = c.RollbackFloor, c.LastGood, true, true
	s.Slots[lg], s.Slots[1-lg] = c.Slots[lg], SlotState{Priority: 1, Tries: DefaultTries}
	if o := c.Slots[1-lg]; o.Good || o.Reason == ReasonRestoredGood {
		s.Slots[1-lg].Reason = ReasonRestoredGood // a copy written since the last restore keeps it
	}
	p := &s.Slots[lg]
	if p.Bootable() && p.Priority < 2 {
		p.Priority = 2
	}
	p.Unconfirmed = 0
	return s, true
}
