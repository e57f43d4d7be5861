package slots

import (
	"errors"
	"strings"
	"testing"
)

func st(a, b SlotState) State { return State{Initialised: true, Slots: [2]SlotState{a, b}} }

func TestChoose(t *testing.T) {
	trial := SlotState{Priority: 2, Tries: 3}
	good := SlotState{Priority: 1, Good: true}
	tests := []struct {
		name       string
		in         State
		forced     Slot
		exclude    []Slot
		want       Choice
		wantState  State
		wantErrHas string
	}{
		{"defaults: a, decremented", DefaultState(), "", nil,
			Choice{Slot: SlotA, Reason: "highest priority (2), not yet good: 2 tries left", TriesLeft: 2, Changed: true},
			State{Slots: [2]SlotState{{2, 2, false, ""}, {1, 3, false, ""}}}, ""},
		{"good slot: untouched", st(SlotState{Priority: 2, Tries: 1, Good: true}, good), "", nil,
			Choice{Slot: SlotA, Reason: "highest priority (2), good", Good: true, TriesLeft: 1},
			st(SlotState{Priority: 2, Tries: 1, Good: true}, good), ""},
		{"b on trial, last try", st(good, SlotState{Priority: 2, Tries: 1}), "", nil,
			Choice{Slot: SlotB, Reason: "highest priority (2), not yet good: 0 tries left", TriesLeft: 0, Changed: true},
			st(good, SlotState{Priority: 2}), ""},
		{"b exhausted: rollback to a", st(good, SlotState{Priority: 2}), "", nil,
			Choice{Slot: SlotA, Reason: "b cannot boot (retired: tries exhausted: never marked good); a has priority 1, good", Good: true, Changed: true},
			st(good, SlotState{Reason: ReasonTriesExhausted}), ""},
		{"tie: a", st(SlotState{Priority: 1, Tries: 1}, good), "", nil,
			Choice{Slot: SlotA, Reason: "highest priority (1), not yet good: 0 tries left", Changed: true},
			st(SlotState{Priority: 1}, good), ""},
		{"fallback after b failed", st(good, trial), "", []Slot{SlotB},
			Choice{Slot: SlotA, Reason: "fallback: b failed in this boot; a has priority 1, good", Good: true},
			st(good, trial), ""},
		{"forced: counters untouched", st(good, SlotState{Reason: "bad"}), SlotB, nil,
			Choice{Slot: SlotB, Reason: "forced by slot=b", Forced: true},
			st(good, SlotState{Reason: "bad"}), ""},
		{"forced and failed", st(good, trial), SlotB, []Slot{SlotB},
			Choice{}, st(good, trial), "slot=b is forced on the command line and failed in this boot"},
		{"forced unknown", st(good, trial), "c", nil,
			Choice{}, st(good, trial), `slot=c: slot "c": expected a or b`},
		{"both bad", st(SlotState{Reason: "verity-a: no keel slot header"}, SlotState{Priority: 1}), "", nil,
			Choice{Changed: true}, st(SlotState{Reason: "verity-a: no keel slot header"}, SlotState{Reason: ReasonTriesExhausted}),
			"no bootable slot: a: retired: verity-a: no keel slot header; b: retired: tries exhausted"},
		{"both failed in this boot", st(good, trial), "", []Slot{SlotA, SlotB},
			Choice{}, st(good, trial), "a: failed in this boot: priority 1, good; b: failed in this boot"},
	}
	for _, tt := range tests {
		s := tt.in
		got, err := s.Choose(tt.forced, tt.exclude...)
		if tt.wantErrHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErrHas) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErrHas)
			}
		} else if err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if got != tt.want || s != tt.wantState {
			t.Errorf("%s:\n got %+v\n     %+v\nwant %+v\n     %+v", tt.name, got, s, tt.want, tt.wantState)
		}
	}
}

// TestRollbackScenario walks SPEC's update flow through Choose alone.
func TestRollbackScenario(t *testing.T) {
	s := DefaultState()
	boot := func() Slot {
		c, err := s.Choose("")
		if err != nil {
			t.Fatal(err)
		}
		return c.Slot
	}
	if boot() != SlotA {
		t.Fatal("fresh disk does not boot a")
	}
	_ = s.MarkGood(SlotA)
	_ = s.SetNext(SlotB, 3)
	for i := 0; i < 3; i++ {
		if got := boot(); got != SlotB {
			t.Fatalf("try %d of b booted %s", i+1, got)
		}
	}
	if got := boot(); got != SlotA {
		t.Fatalf("after b's tries ran out, %s booted", got)
	}
	if b := s.Slot(SlotB); b.Priority != 0 || b.Reason != ReasonTriesExhausted {
		t.Errorf("b after rollback: %+v", b)
	}
	_ = s.SetNext(SlotB, 3)
	boot()
	_ = s.MarkGood(SlotB)
	for i := 0; i < 5; i++ {
		if got := boot(); got != SlotB {
			t.Fatalf("good b lost to %s", got)
		}
	}
}

func TestSelect(t *testing.T) {
	fail := func(bad ...Slot) func(Choice) error {
		return func(c Choice) error {
			for _, b := range bad {
				if c.Slot == b {
					return errors.New("verity-" + string(b) + ": header signature does not verify")
				}
			}
			return nil
		}
	}
	m := NewMemStore(BootStateMinSize)
	sel, err := Select(m, "", fail(SlotA))
	if err != nil || sel.Choice.Slot != SlotB || len(sel.Fallbacks) != 1 || sel.Fallbacks[0].Slot != SlotA {
		t.Fatalf("a failing: %+v, %v; want b after a's fallback", sel, err)
	}
	if !strings.HasPrefix(sel.Choice.Reason, "fallback: a failed in this boot; b has priority 1, not yet good: 2 tries left") {
		t.Errorf("reason %q", sel.Choice.Reason)
	}
	saved := mustLoad(t, m)
	if a := saved.Slot(SlotA); a.Priority != 0 || !strings.Contains(a.Reason, "header signature") || saved.Slot(SlotB).Tries != 2 {
		t.Errorf("saved state %+v", saved)
	}
	if saved != sel.State {
		t.Errorf("Selection.State %+v, saved %+v", sel.State, saved)
	}

	sel, err = Select(m, "", fail(SlotB))
	if !errors.Is(err, ErrNoBootableSlot) || len(sel.Fallbacks) != 1 || sel.Choice.Slot != "" {
		t.Errorf("both bad: %+v, %v", sel, err)
	}
	if got := mustLoad(t, m); got.Bootable(SlotA) || got.Bootable(SlotB) {
		t.Errorf("both bad, saved %+v", got)
	}

	before := mustLoad(t, m)
	sel, err = Select(m, SlotB, fail())
	if err != nil || sel.Choice.Slot != SlotB || !sel.Choice.Forced || mustLoad(t, m) != before {
		t.Errorf("slot=b: %+v, %v; state must stay %+v", sel, err, before)
	}
	sel, err = Select(m, SlotA, fail(SlotA))
	if !errors.Is(err, ErrNoBootableSlot) || len(sel.Fallbacks) != 1 || mustLoad(t, m) != before {
		t.Errorf("slot=a failing: %+v, %v; want no fallback, state untouched", sel, err)
	}
}

// roStore refuses every write, like a read-only or dying bootstate device.
type roStore struct{ *MemStore }

func (roStore) WriteAt([]byte, int64) (int, error) { return 0, errors.New("read-only file system") }

func TestSelectUnwritable(t *testing.T) {
	m := NewMemStore(BootStateMinSize)
	s := st(SlotState{Priority: 1, Good: true}, SlotState{Priority: 2, Tries: 3})
	if err := Save(m, &s); err != nil {
		t.Fatal(err)
	}
	tried := 0
	sel, err := Select(roStore{m}, "", func(Choice) error { tried++; return nil })
	if err != nil || sel.Choice.Slot != SlotA || tried != 1 {
		t.Fatalf("unwritable: %+v, %v, %d tries; want a (good), b skipped", sel, err, tried)
	}
	if len(sel.Fallbacks) != 1 || !strings.Contains(sel.Fallbacks[0].Reason, "cannot be counted: write boot state copy 1") {
		t.Errorf("fallbacks %+v", sel.Fallbacks)
	}
	if got := mustLoad(t, m); got != s {
		t.Errorf("unwritable store changed: %+v", got)
	}
}
