package slots

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SlotState is the boot-counting state of one slot.
type SlotState struct {
	// Priority orders the slots; 0 means the slot is never chosen.
	Priority uint8
	// Tries is how many more boots a slot that is not yet good may have.
	Tries uint8
	// Good is set once a boot of the slot was confirmed (slotctl mark-good).
	Good bool
	// Reason says why the slot last failed or was retired; empty otherwise.
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
	default:
		fmt.Fprintf(&b, "priority %d, not yet good, %s", x.Priority, triesLeft(x.Tries))
	}
	if x.Reason != "" {
		b.WriteString(": " + x.Reason)
	}
	return b.String()
}

// State is the boot-counting state of both slots, as stored in a record.
type State struct {
	// Seq is the sequence number of the record the state was read from (0
	// when no record was valid); Save writes Seq+1.
	Seq uint64
	// Slots holds slot a at index 0 and slot b at index 1.
	Slots [2]SlotState
	// Initialised is false when no valid record was found and the state is
	// DefaultState.
	Initialised bool
}

// DefaultTries is the tries counter of a fresh slot and of set-next.
const DefaultTries = 3

// DefaultState is the state of a blank or unreadable bootstate partition:
// both slots may be tried, a first, each with DefaultTries boots to be
// marked good. A slot whose image is missing or broken fails in the
// initramfs, is marked bad and is then never chosen again.
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

// MarkGood records that slot x booted successfully: it no longer uses up
// tries. Its priority is left alone, so a slot that was retired stays
// retired until SetNext.
func (s *State) MarkGood(x Slot) error {
	p, err := s.slot(x)
	if err != nil {
		return err
	}
	p.Good, p.Reason = true, ""
	return nil
}

// SetNext makes x the slot to boot next, on trial: the top priority, tries
// boots to be marked good. The other slot keeps its good flag, its tries
// and, if it was bootable at all, a lower priority: it is the fallback.
func (s *State) SetNext(x Slot, tries int) error {
	p, err := s.slot(x)
	if err != nil {
		return err
	}
	if tries < 1 || tries > 255 {
		return fmt.Errorf("slot %s: %d tries, expected 1 to 255", x, tries)
	}
	o, _ := s.slot(x.Other())
	if o.Priority > 0 {
		o.Priority = 1
	}
	*p = SlotState{Priority: 2, Tries: uint8(tries)}
	return nil
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
