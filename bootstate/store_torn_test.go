// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"errors"
	"strings"
	"testing"
)

// step is one write of a realistic life of a bootstate partition.
type step struct {
	name string
	op   func(s *State) error
}

func choose(s *State) error {
	_, err := s.Choose("", 0)
	if errors.Is(err, ErrNoBootableSlot) {
		return nil // the retirement is still written
	}
	return err
}

// tornSteps is the sequence of the torn-write proof: every step changes the
// state, so every step is one Save.
func tornSteps() []step {
	long := "verity-b: root hash mismatch: " + strings.Repeat("ü€", 60) // cut at a rune boundary
	return []step{
		{"first boot decrements a", choose},
		{"second boot decrements a", choose},
		{"mark-good a", func(s *State) error { return s.MarkGood(SlotA, "img-1", 1) }},
		{"good a: unconfirmed boot", choose},
		{"data partition seen", func(s *State) error { s.DataSeen = true; return nil }},
		{"the data mount counted", func(s *State) error { s.BeginDataMount(); return nil }},
		{"a second unfinished data mount", func(s *State) error { s.BeginDataMount(); return nil }},
		{"the slot's count ends them", func(s *State) error { s.UnfinishedDataMounts = 0; return choose(s) }},
		{"set-next b", func(s *State) error { return s.SetNext(SlotB, 3, "") }},
		{"boot b decrements", choose},
		{"init marks b bad", func(s *State) error { return s.MarkBad(SlotB, long) }},
		{"set-next b again", func(s *State) error { return s.SetNext(SlotB, 2, "") }},
		{"boot b: 1 try left", choose},
		{"boot b: last try", choose},
		{"b exhausted, rollback to a", choose},
		{"set-next a with one try", func(s *State) error { return s.SetNext(SlotA, 1, "") }},
		{"boot a: last try", choose},
		{"nothing bootable: a retired", choose},
		{"mark-good b", func(s *State) error { return s.MarkGood(SlotB, "img-3", 3) }},
		{"set-next a again", func(s *State) error { return s.SetNext(SlotA, 1, "") }},
		{"boot a, then mark-good", func(s *State) error {
			if err := choose(s); err != nil {
				return err
			}
			return s.MarkGood(SlotA, "img-4", 4)
		}},
		{"good a unconfirmed 1", choose},
		{"good a unconfirmed 2", choose},
		{"good a unconfirmed 3", choose},
		{"a demoted, good b boots", choose},
	}
}

// TestTornWrites is the power-cut proof: every write of tornSteps is cut at
// every byte offset, from the front and from the back, and its flush is
// lost or kept. After each cut the state read back must be exactly the
// state before or after the step, never invalid, never with more tries than
// before (unless the step itself grants tries), and the next write must
// succeed.
func TestTornWrites(t *testing.T) {
	disk := NewMemStore(BootStateMinSize)
	cuts := 0
	for _, st := range tornSteps() {
		old := mustLoad(t, disk)
		want := apply(t, disk.Clone(), old, st)
		if want == old {
			t.Fatalf("step %q does not change the state: it tests no write", st.name)
		}
		for _, f := range faultsFor(RecordSize) {
			checkCut(t, disk, st, f, old, want)
			cuts++
		}
		*disk = *applyStore(t, disk, st)
	}
	t.Logf("torn-write proof: %d steps, %d cut points tested", len(tornSteps()), cuts)
	if cuts < len(tornSteps())*2*RecordSize {
		t.Errorf("only %d cut points tested", cuts)
	}
}

// checkCut runs step st on a copy of disk that loses power as f says.
func checkCut(t *testing.T, disk *MemStore, st step, f fault, old, want State) {
	t.Helper()
	fs := newFaultStore(disk.Clone(), f)
	s, _, err := Load(fs)
	if err != nil {
		t.Fatalf("%s, %v: load before the cut: %v", st.name, f, err)
	}
	if err := st.op(&s); err != nil {
		t.Fatalf("%s: %v", st.name, err)
	}
	if err := Save(fs, &s); !errors.Is(err, errPowerCut) {
		t.Fatalf("%s, %v: Save returned %v, want the power cut", st.name, f, err)
	}
	got := mustLoad(t, fs.disk)
	if got != old && got != want {
		t.Fatalf("%s, cut %v: read back %+v\nwant the old %+v\nor the new %+v", st.name, f, got, old, want)
	}
	checkNoTriesGained(t, st, f, old, got)
	if got == old {
		after := applyStore(t, fs.disk, st)
		if again := mustLoad(t, after); again != want {
			t.Fatalf("%s, cut %v: redoing the step gave %+v, want %+v", st.name, f, again, want)
		}
	}
}

// checkNoTriesGained: only set-next may raise a tries counter.
func checkNoTriesGained(t *testing.T, st step, f fault, old, got State) {
	t.Helper()
	if strings.HasPrefix(st.name, "set-next") {
		return
	}
	for i, x := range got.Slots {
		if x.Tries > old.Slots[i].Tries {
			t.Fatalf("%s, cut %v: slot %s has %d tries, had %d", st.name, f, Slots()[i], x.Tries, old.Slots[i].Tries)
		}
	}
}

func mustLoad(t *testing.T, st Store) State {
	t.Helper()
	s, _, err := Load(st)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

// apply runs st on s and saves it to disk, returning the state read back.
func apply(t *testing.T, disk *MemStore, s State, st step) State {
	t.Helper()
	if err := st.op(&s); err != nil {
		t.Fatalf("%s: %v", st.name, err)
	}
	if err := Save(disk, &s); err != nil {
		t.Fatalf("%s: Save: %v", st.name, err)
	}
	got := mustLoad(t, disk)
	if got != s {
		t.Fatalf("%s: saved %+v, read back %+v", st.name, s, got)
	}
	return got
}

// applyStore runs st on a copy of disk without faults.
func applyStore(t *testing.T, disk *MemStore, st step) *MemStore {
	t.Helper()
	d := disk.Clone()
	apply(t, d, mustLoad(t, d), st)
	return d
}
