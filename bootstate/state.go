// SPDX-License-Identifier: Apache-2.0

// Package bootstate is keel's A/B boot counting: the state of both slots
// (priority, tries, good flag, unconfirmed boots of a good slot), the
// machine's rollback floor and last good image, the power-cut-safe record
// that holds them on the bootstate partition (docs/formats.md), and the
// choice the init makes from them on every boot (docs/boot-sequence.md).
//
// It knows nothing of devices, verity or mounts: the init hands it a Store
// and a function that tries a slot, and classifies that function's errors
// (Fault) so that only image faults retire a slot.
package bootstate

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keel-boot/keel/slots"
)

// Slot is a slot name; the slot layout is package slots'.
type Slot = slots.Slot

// The two slots.
const (
	SlotA = slots.SlotA
	SlotB = slots.SlotB
)

// Slots lists every slot in a fixed order.
func Slots() []Slot { return slots.Slots() }

// SlotState is the boot-counting state of one slot.
type SlotState struct {
	// Priority orders the slots; 0 means the slot is never chosen.
	Priority uint8
	// Tries is how many more boots a slot that is not yet good may have.
	Tries uint8
	// Good is set once a boot of the slot was confirmed (slotctl mark-good).
	Good bool
	// Unconfirmed counts the boots of a good slot since it was last marked
	// good: each boot adds one before anything is mounted, mark-good clears
	// it. After MaxUnconfirmed the slot is demoted below the other good slot
	// (or a trial that was good in the data partition's copy: State.Choose).
	Unconfirmed uint8
	// Reason says why the slot last failed, was retired or demoted.
	Reason string
}

// Bootable reports whether boot counting may choose the slot.
func (x SlotState) Bootable() bool { return x.Priority > 0 && (x.Good || x.Tries > 0) }

// String describes the slot state for logs and slotctl status.
func (x SlotState) String() string {
	var b strings.Builder
	switch {
	case x.Priority == 0:
		b.WriteString("retired")
		if x.Good {
			b.WriteString(", good")
		}
	case x.Good:
		fmt.Fprintf(&b, "priority %d, good", x.Priority)
		if x.Unconfirmed > 0 {
			fmt.Fprintf(&b, ", %d unconfirmed", x.Unconfirmed)
		}
	default:
		fmt.Fprintf(&b, "priority %d, not yet good, %s", x.Priority, triesLeft(x.Tries))
	}
	if x.Reason != "" {
		b.WriteString(": " + x.Reason)
	}
	return b.String()
}

// LastGood names the image the machine last confirmed good: the slot it
// ran from and its image id. The /etc merge takes its local changes from
// that image's upper.
type LastGood struct {
	Slot    Slot
	ImageID string
}

// State is the boot-counting state of both slots and of the machine, as
// stored in a record.
type State struct {
	// Seq is the sequence number of the record the state was read from (0
	// when no record was valid); Save writes Seq+1.
	Seq uint64
	// Slots holds slot a at index 0 and slot b at index 1.
	Slots [2]SlotState
	// RollbackFloor is the highest rollback index of any image marked good:
	// a locked init refuses images below it.
	RollbackFloor uint64
	// DataSeen is set once a boot used a data partition: later boots wait
	// for it like any required device.
	DataSeen bool
	// UnfinishedDataMounts counts the boots in a row that began mounting
	// the data partition and never finished with it: the mount, or the
	// work in the new root after the choice of a slot (the /var seed, the
	// /etc merge, the upper, the binds), hung or panicked the kernel, or
	// the power was cut during it (see DataMountLimit). Select sets it
	// back to 0 once that work returned.
	UnfinishedDataMounts uint8
	// LastGood is the image last marked good (zero before the first).
	LastGood LastGood
	// Initialised is false when no valid record was found and the state is
	// DefaultState.
	Initialised bool
}

// DataMountLimit is how many unfinished mounts of the data partition in a
// row make the next boot leave it alone (volatile, loudly), so that a data
// file system whose mount, or whose preparation for the new root, hangs or
// panics the kernel in every boot lets one boot in DataMountLimit+1 come
// up, where it can be repaired, instead of none. One unfinished mount is
// tolerated: a power cut during it.
const DataMountLimit = 2

// DataMountUnfinished reports whether the last DataMountLimit boots began
// mounting the data partition and never finished with it.
func (s State) DataMountUnfinished() bool { return s.UnfinishedDataMounts >= DataMountLimit }

// BeginDataMount counts a mount of the data partition that this boot is
// about to begin; Select ends it once the slot's attempts returned.
func (s *State) BeginDataMount() {
	if s.UnfinishedDataMounts < 255 {
		s.UnfinishedDataMounts++
	}
}

// DefaultTries is the tries counter of a fresh slot and of set-next.
const DefaultTries = 3

// DefaultMaxUnconfirmed is how many boots of a good slot may go
// unconfirmed in a row before it is demoted (mkinitrd bakes another).
const DefaultMaxUnconfirmed = 3

// DefaultState is the state of a blank or unreadable bootstate partition:
// both slots may be tried, a first, each with DefaultTries boots to be
// marked good.
func DefaultState() State {
	return State{Slots: [2]SlotState{
		{Priority: 2, Tries: DefaultTries},
		{Priority: 1, Tries: DefaultTries},
	}}
}

// index maps a slot to its position in State.Slots.
func index(s Slot) (int, error) {
	switch s {
	case SlotA:
		return 0, nil
	case SlotB:
		return 1, nil
	}
	return 0, fmt.Errorf("slot %q: expected a or b", string(s))
}

// Slot returns the state of slot s (the zero state for an unknown slot).
func (s State) Slot(x Slot) SlotState {
	i, err := index(x)
	if err != nil {
		return SlotState{}
	}
	return s.Slots[i]
}

// Bootable reports whether boot counting may choose slot x.
func (s State) Bootable(x Slot) bool { return s.Slot(x).Bootable() }

// slot returns a pointer to the state of x for the mutators.
func (s *State) slot(x Slot) (*SlotState, error) {
	i, err := index(x)
	if err != nil {
		return nil, err
	}
	return &s.Slots[i], nil
}

// MarkBad retires slot x until the next SetNext: it is never chosen again.
func (s *State) MarkBad(x Slot, reason string) error {
	p, err := s.slot(x)
	if err != nil {
		return err
	}
	*p = SlotState{Reason: CleanReason(reason)}
	return nil
}

// MarkGood records that slot x, running image imageID with rollback index
// rollback, booted successfully: it no longer uses up tries, its
// unconfirmed boots are cleared, it becomes the last good image (unless
// imageID is "", unknown) and the rollback floor rises to its index. Its priority is left alone, so a slot
// that was retired stays retired until SetNext.
func (s *State) MarkGood(x Slot, imageID string, rollback uint64) error {
	p, err := s.slot(x)
	if err != nil {
		return err
	}
	if len(imageID) > lastIDMax || CleanReason(imageID) != imageID {
		return fmt.Errorf("image id %q: expected at most %d printable bytes", imageID, lastIDMax)
	}
	p.Good, p.Unconfirmed, p.Reason = true, 0, ""
	if imageID != "" {
		s.LastGood = LastGood{Slot: x, ImageID: imageID}
	}
	s.RollbackFloor = max(s.RollbackFloor, rollback)
	return nil
}

// SetNext makes x the slot to boot next, on trial: the top priority, tries
// boots to be marked good. The other slot keeps its good flag, its tries
// and, if it was bootable at all or is good (a retired slot booted with
// slot= and marked good, which MarkGood leaves at priority 0), priority 1:
// it is the fallback, so the trial's end always has a slot to boot. A
// restore's mark on the other slot (ReasonRestoredGood) goes: the operator
// chose, and no unconfirmed boots of x bring back the slot set aside.
//
// x keeps its good flag when it is the only good slot (set-next, or RAUC's
// mark-active, of the good slot while the other one's update is not yet
// confirmed, to roll back): a trial would leave no slot good, and unconfirmed
// boots of it (a failing health check, the rollout's network down) would
// retire the image that worked. It then boots next as a good slot, its
// unconfirmed boots and reason cleared, tries given. imageID is the image id
// x's header holds now ("" when unknown): when the last good image is x's and
// its id differs, x was written since it was confirmed (rauc write-slot, a
// custom RAUC handler, dd: keel's own installs mark a slot bad first) and it
// goes on trial as any new image.
func (s *State) SetNext(x Slot, tries int, imageID string) error {
	p, err := s.slot(x)
	if err != nil {
		return err
	}
	if tries < 1 || tries > 255 {
		return fmt.Errorf("slot %s: %d tries, expected 1 to 255", x, tries)
	}
	o, _ := s.slot(x.Other())
	if o.Priority > 0 || o.Good {
		o.Priority = 1
	}
	s.Chosen(x)
	rewritten := s.LastGood.Slot == x && imageID != "" && imageID != s.LastGood.ImageID
	*p = SlotState{Priority: 2, Tries: uint8(tries), Good: p.Good && !o.Good && !rewritten}
	return nil
}

// Chosen records that an operator chose x to boot next (set-next, RAUC's
// set-primary): a restore's mark on the other slot (ReasonRestoredGood)
// goes, so that boots of x left unconfirmed do not bring that slot back.
func (s *State) Chosen(x Slot) {
	if o, err := s.slot(x.Other()); err == nil && o.Reason == ReasonRestoredGood {
		o.Reason = ""
	}
}

// normalise cleans every reason so that the state in memory is exactly the
// state that is stored.
func (s *State) normalise() {
	for i := range s.Slots {
		s.Slots[i].Reason = CleanReason(s.Slots[i].Reason)
	}
}

// CleanReason makes a reason storable and printable: valid UTF-8, control
// characters (newlines from wrapped errors) as spaces, at most ReasonMax
// bytes cut at a rune boundary.
func CleanReason(r string) string {
	r = strings.ToValidUTF8(r, "\uFFFD")
	r = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return ' '
		}
		return c
	}, r)
	if len(r) <= ReasonMax {
		return r
	}
	n := ReasonMax
	for n > 0 && !utf8.RuneStart(r[n]) {
		n--
	}
	return r[:n]
}
