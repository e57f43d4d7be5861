// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadCopy(t *testing.T) {
	want := st(SlotState{Reason: "verity-a: bad signature"}, SlotState{Priority: 1, Good: true})
	want.Seq, want.RollbackFloor = 7, 3
	want.LastGood = LastGood{Slot: SlotB, ImageID: "os-2"}
	rec := MarshalRecord(want)
	got, err := ReadCopy(bytes.NewReader(rec))
	if err != nil || got != want {
		t.Fatalf("ReadCopy = %+v, %v; want %+v", got, err, want)
	}
	torn := bytes.Clone(rec)
	torn[recOffSlots] ^= 1
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":     {nil, "boot state copy: 0 bytes, expected one record of 512"},
		"short":     {rec[:300], "boot state copy: 300 bytes, expected one record of 512"},
		"long":      {append(bytes.Clone(rec), 0), "boot state copy: more than 512 bytes, expected one record"},
		"corrupted": {torn, "checksum"},
		"foreign":   {bytes.Repeat([]byte("x"), RecordSize), "magic"},
	} {
		if _, err := ReadCopy(bytes.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	eio := errors.New("input/output error")
	if _, err := ReadCopy(iotest.ErrReader(eio)); !errors.Is(err, eio) {
		t.Errorf("read error: %v, want it wrapped", err)
	}
}

func TestFromCopy(t *testing.T) {
	good := SlotState{Priority: 1, Good: true}
	trial := SlotState{Priority: 2, Tries: 3}
	for _, tc := range []struct {
		name     string
		copy     State
		want     State
		wantHeld []Slot
		wantSlot Slot
		// wantFallback is the slot booted once wantSlot failed in this boot.
		wantFallback Slot
	}{
		{"a retired after crashes, b good: b, where the defaults boot a",
			st(SlotState{Reason: ReasonTriesExhausted}, good), State{Slots: [2]SlotState{{Reason: ReasonTriesExhausted}, {Priority: 2, Good: true}}}, nil, SlotB, ""},
		{"a on trial above the good b: b first, a held back (its tries cannot be counted), tried only when b fails",
			st(trial, good), State{Slots: [2]SlotState{{Priority: 1, Tries: 3}, {Priority: 2, Good: true}}}, []Slot{SlotA}, SlotB, SlotA},
		{"a on trial, the good b at its limit of unconfirmed boots: b first all the same (a trial's try cannot be counted)",
			st(trial, SlotState{Priority: 1, Good: true, Unconfirmed: DefaultMaxUnconfirmed}),
			State{Slots: [2]SlotState{{Priority: 1, Tries: 3}, {Priority: 2, Good: true, Unconfirmed: DefaultMaxUnconfirmed}}}, []Slot{SlotA}, SlotB, SlotA},
		{"both good: the copy's order", st(SlotState{Priority: 2, Good: true}, good),
			State{Slots: [2]SlotState{{Priority: 3, Good: true}, {Priority: 2, Good: true}}}, nil, SlotA, SlotB},
		{"no good slot yet (a new machine): the copy as it is", st(trial, SlotState{Priority: 1, Tries: 1}),
			State{Slots: [2]SlotState{trial, {Priority: 1, Tries: 1}}}, nil, SlotA, SlotB},
		{"the good slot retired: the copy as it is, the trial first",
			st(trial, SlotState{Good: true, Reason: "verity-b: bad"}), State{Slots: [2]SlotState{trial, {Good: true, Reason: "verity-b: bad"}}}, nil, SlotA, SlotB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.copy
			c.Seq, c.RollbackFloor, c.DataSeen, c.LastGood = 41, 5, true, LastGood{Slot: SlotB, ImageID: "os-1"}
			tc.want.RollbackFloor, tc.want.DataSeen, tc.want.LastGood = 5, true, c.LastGood
			got, held := FromCopy(c)
			if got != tc.want || !slices.Equal(held, tc.wantHeld) {
				t.Fatalf("FromCopy = %+v, held %v\nwant %+v, held %v", got, held, tc.want, tc.wantHeld)
			}
			sel, err := Select(NewMemStore(BootStateMinSize), got, Request{InMemory: true}, func(Choice) error { return nil })
			if err != nil || sel.Choice.Slot != tc.wantSlot {
				t.Errorf("Select from the copy: %+v, %v; want slot %s", sel.Choice, err, tc.wantSlot)
			}
			sel, err = Select(NewMemStore(BootStateMinSize), got, Request{InMemory: true}, func(ch Choice) error {
				if ch.Slot == tc.wantSlot {
					return Classify(Image, "verity", errors.New("bad block"))
				}
				return nil
			})
			if tc.wantFallback == "" && err == nil || tc.wantFallback != "" && (err != nil || sel.Choice.Slot != tc.wantFallback) {
				t.Errorf("Select from the copy, %s failing: %+v, %v; want %q", tc.wantSlot, sel.Choice, err, tc.wantFallback)
			}
		})
	}
}

// FuzzFromCopy: whatever record the copy holds, the state from it keeps the
// copy's floor, last good image, good flags and tries, and boot counting
// from it (in memory, as the init counts) chooses a slot that is not good
// only once every good slot that could boot failed in this boot, whatever
// the attempts' outcomes; the held-back slots are exactly those.
func FuzzFromCopy(f *testing.F) {
	f.Add(MarshalRecord(st(SlotState{Priority: 2, Tries: 3}, SlotState{Priority: 1, Good: true})), uint8(0))
	f.Add(MarshalRecord(st(SlotState{Priority: 2, Tries: 3}, SlotState{Priority: 1, Good: true})), uint8(1))
	f.Add(MarshalRecord(st(SlotState{Priority: 2, Tries: 3}, SlotState{Priority: 1, Good: true, Unconfirmed: 9})), uint8(0))
	f.Add(MarshalRecord(DefaultState()), uint8(1))
	f.Fuzz(func(t *testing.T, rec []byte, outcomes uint8) {
		c, err := ReadCopy(bytes.NewReader(sealed(rec)))
		if err != nil {
			return
		}
		s, held := FromCopy(c)
		if s.RollbackFloor != c.RollbackFloor || s.LastGood != c.LastGood || s.Seq != 0 || s.Initialised {
			t.Fatalf("FromCopy(%+v) = %+v", c, s)
		}
		for i, x := range s.Slots {
			was := c.Slots[i]
			if x.Good != was.Good || x.Tries != was.Tries || x.Reason != was.Reason || x.Bootable() != was.Bootable() {
				t.Fatalf("FromCopy changed slot %d beyond its priority: %+v → %+v", i, was, x)
			}
			if slices.Contains(held, Slots()[i]) != (c.goodBootable() && !was.Good && was.Bootable()) {
				t.Fatalf("slot %d held back %v: %+v from %+v", i, held, x, c)
			}
		}
		var failed []Slot
		n := 0
		_, _ = Select(NewMemStore(BootStateMinSize), s, Request{InMemory: true}, func(ch Choice) error {
			if !ch.Good {
				for i, x := range c.Slots {
					if y := Slots()[i]; x.Good && x.Bootable() && !slices.Contains(failed, y) {
						t.Fatalf("slot %s, not good, chosen from %+v before the good slot %s failed", ch.Slot, c, y)
					}
				}
			}
			o := outcomes >> (2 * n) & 3
			n++
			if o == 1 || o == 2 {
				failed = append(failed, ch.Slot)
			}
			if o == 1 {
				return Classify(Image, "x", errors.New("img"))
			}
			if o == 2 {
				return Classify(Environment, "x", errors.New("env"))
			}
			return nil
		})
	})
}

func TestPristine(t *testing.T) {
	counted := DefaultState()
	counted.Seq, counted.UnfinishedDataMounts, counted.Initialised = 4, 2, true
	tried := counted
	tried.Slots[0].Tries--
	seen, floor, lg := counted, counted, counted
	seen.DataSeen, floor.RollbackFloor, lg.LastGood = true, 1, LastGood{Slot: SlotA, ImageID: "A1"}
	for _, tc := range []struct {
		name string
		s    State
		want bool
	}{
		{"defaults", DefaultState(), true},
		{"a data mount counted", counted, true},
		{"a try counted", tried, false},
		{"data seen", seen, false},
		{"a floor", floor, false},
		{"a last good image", lg, false},
	} {
		if got := tc.s.Pristine(); got != tc.want {
			t.Errorf("%s: Pristine() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRestore: the copy's last good slot first, its floor and last good
// image; the other slot a trial below it, whatever the copy said of it (a
// stale copy's retired slot, a good flag for an image it names not).
func TestRestore(t *testing.T) {
	cur := DefaultState()
	cur.Seq, cur.UnfinishedDataMounts, cur.Initialised = 3, 1, true
	c := st(SlotState{Priority: 0, Reason: ReasonTriesExhausted}, SlotState{Priority: 1, Good: true, Unconfirmed: 2})
	c.Seq, c.RollbackFloor, c.LastGood = 40, 6, LastGood{Slot: SlotB, ImageID: "B1"}
	got, ok := Restore(c, cur)
	want := State{Seq: 3, UnfinishedDataMounts: 1, Initialised: true, DataSeen: true, RollbackFloor: 6, LastGood: c.LastGood,
		Slots: [2]SlotState{{Priority: 1, Tries: DefaultTries}, {Priority: 2, Good: true}}}
	if !ok || got != want {
		t.Errorf("Restore = %+v, %v\nwant %+v", got, ok, want)
	}
	// The other slot good in the copy: a trial all the same (the copy
	// names no image for it), marked as good there.
	c.Slots[0] = SlotState{Priority: 2, Good: true, Unconfirmed: 1}
	if got, ok := Restore(c, cur); !ok || got.Slot(SlotA) != (SlotState{Priority: 1, Tries: DefaultTries, Reason: ReasonRestoredGood}) {
		t.Errorf("Restore with a good in the copy: a %+v, %v; want a trial marked good in the copy", got.Slot(SlotA), ok)
	}
	c.LastGood = LastGood{}
	if got, ok := Restore(c, cur); ok || got != cur {
		t.Errorf("Restore of a copy with no last good image = %+v, %v: want cur, false", got, ok)
	}
}

// FuzzRestore: whatever a copy holds, the restored state is durable, keeps
// cur's sequence and data mount count, has the copy's floor and last good
// image, the other slot a fresh trial, and boots the last good slot first
// when that slot can boot.
func FuzzRestore(f *testing.F) {
	c := st(SlotState{Priority: 2, Good: true}, SlotState{Priority: 1, Tries: 3})
	c.LastGood = LastGood{Slot: SlotA, ImageID: "A1"}
	f.Add(MarshalRecord(c), uint64(2), uint8(1))
	c.Slots[0].Unconfirmed = DefaultMaxUnconfirmed
	f.Add(MarshalRecord(c), uint64(2), uint8(1))
	c.Slots[1] = SlotState{Priority: 1, Good: true}
	f.Add(MarshalRecord(c), uint64(2), uint8(1))
	f.Add(MarshalRecord(DefaultState()), uint64(0), uint8(0))
	f.Fuzz(func(t *testing.T, rec []byte, seq uint64, unfinished uint8) {
		c, err := ReadCopy(bytes.NewReader(sealed(rec)))
		if err != nil {
			return
		}
		cur := DefaultState()
		cur.Seq, cur.UnfinishedDataMounts = seq, unfinished
		s, ok := Restore(c, cur)
		if !ok {
			if c.LastGood.Slot != "" || s != cur {
				t.Fatalf("Restore(%+v) refused: %+v", c, s)
			}
			return
		}
		if s.Seq != seq || s.UnfinishedDataMounts != unfinished || !s.Initialised || !s.DataSeen || s.RollbackFloor != c.RollbackFloor || s.LastGood != c.LastGood || s.Slot(c.LastGood.Slot).Unconfirmed != 0 {
			t.Fatalf("Restore(%+v) = %+v", c, s)
		}
		lg := c.LastGood.Slot
		for _, x := range Slots() {
			want := SlotState{Priority: 1, Tries: DefaultTries}
			if c.Slot(x).Good || c.Slot(x).Reason == ReasonRestoredGood {
				want.Reason = ReasonRestoredGood
			}
			if x != lg && s.Slot(x) != want {
				t.Fatalf("the other slot %s: %+v, want a fresh trial %+v", x, s.Slot(x), want)
			}
		}
		if s.Slot(lg).Bootable() {
			sel, err := Select(NewMemStore(BootStateMinSize), s, Request{}, func(Choice) error { return nil })
			if err != nil || sel.Choice.Slot != lg {
				t.Fatalf("Restore(%+v) = %+v boots %s (%v), want the last good slot %s", c, s, sel.Choice.Slot, err, lg)
			}
		}
	})
}

// TestRewrittenLastGoodHeldBack: the copy, not written since (a full data
// partition), calls b good with image old; b was rewritten since (an update
// that crashes) and a is good. Counted from the copy while the bootstate
// partition cannot be read, every boot chose b first and nothing
// remembered its crash: a loop, a working slot never tried (found by a
// hunting helper). Taken for a trial, b is held back behind a.
func TestRewrittenLastGoodHeldBack(t *testing.T) {
	var c State
	c.Slots[0] = SlotState{Priority: 1, Good: true}
	c.Slots[1] = SlotState{Priority: 2, Good: true, Unconfirmed: 2}
	c.LastGood = LastGood{Slot: SlotB, ImageID: "old"}
	if same, changed := Rewritten(c, "old"); changed || same != c {
		t.Errorf("Rewritten with the same image: %+v, %v: want c unchanged", same, changed)
	}
	r, changed := Rewritten(c, "new")
	if !changed || r.Slots[1] != (SlotState{Priority: 2, Tries: 1}) || r.Slots[0] != c.Slots[0] || r.LastGood != c.LastGood {
		t.Fatalf("Rewritten: %+v, %v: want b a trial with one try, the rest as it was", r, changed)
	}
	s, held := FromCopy(r)
	if len(held) != 1 || held[0] != SlotB {
		t.Errorf("held %v: want b held back", held)
	}
	sel, err := Select(NewMemStore(BootStateMinSize), s, Request{}, func(Choice) error { return nil })
	if err != nil || sel.Choice.Slot != SlotA || !sel.Choice.Good {
		t.Errorf("chose %+v, %v: want the good slot a", sel.Choice, err)
	}
	if _, changed := Rewritten(State{Slots: c.Slots}, "new"); changed {
		t.Error("a copy naming no last good image changed")
	}
}

// FuzzRewritten: whatever the copy and the image found, Rewritten changes
// only the copy's last good slot, only when it holds another image and is
// good, into a trial that can boot when its priority lets it.
func FuzzRewritten(f *testing.F) {
	c := st(SlotState{Priority: 1, Good: true}, SlotState{Priority: 2, Good: true})
	c.LastGood = LastGood{Slot: SlotB, ImageID: "old"}
	f.Add(MarshalRecord(c), "new")
	f.Add(MarshalRecord(c), "old")
	f.Add(MarshalRecord(DefaultState()), "")
	f.Fuzz(func(t *testing.T, rec []byte, now string) {
		c, err := ReadCopy(bytes.NewReader(sealed(rec)))
		if err != nil {
			return
		}
		r, changed := Rewritten(c, now)
		if !changed {
			if r != c {
				t.Fatalf("Rewritten(%+v, %q) changed it without saying so: %+v", c, now, r)
			}
			return
		}
		lg := c.LastGood
		i, err := index(lg.Slot)
		if err != nil || now == lg.ImageID || !c.Slots[i].Good {
			t.Fatalf("Rewritten(%+v, %q) changed a copy it should not have", c, now)
		}
		x := r.Slots[i]
		if x.Good || x.Unconfirmed != 0 || x.Tries == 0 || x.Priority != c.Slots[i].Priority || x.Bootable() != (x.Priority > 0) {
			t.Fatalf("Rewritten(%+v, %q): slot %s %+v, want a trial", c, now, lg.Slot, x)
		}
		if r.Slots[1-i] != c.Slots[1-i] || r.LastGood != c.LastGood || r.RollbackFloor != c.RollbackFloor {
			t.Fatalf("Rewritten(%+v, %q) = %+v: changed beyond the last good slot", c, now, r)
		}
	})
}
