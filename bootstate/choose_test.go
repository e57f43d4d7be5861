// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func st(a, b SlotState) State { return State{Initialised: true, Slots: [2]SlotState{a, b}} }

func TestChoose(t *testing.T) {
	trial := SlotState{Priority: 2, Tries: 3}
	good := SlotState{Priority: 1, Good: true}
	restored := SlotState{Priority: 1, Tries: 2, Reason: ReasonRestoredGood}
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
			State{Slots: [2]SlotState{{Priority: 2, Tries: 2}, {Priority: 1, Tries: 3}}}, ""},
		{"good slot: one unconfirmed boot counted", st(SlotState{Priority: 2, Tries: 1, Good: true}, good), "", nil,
			Choice{Slot: SlotA, Reason: "highest priority (2), good (boot 1 since the last mark-good)", Good: true, TriesLeft: 1, Unconfirmed: 1, Changed: true},
			st(SlotState{Priority: 2, Tries: 1, Good: true, Unconfirmed: 1}, good), ""},
		{"good slot unconfirmed 3 times: demoted below the other good slot",
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 3}, good), "", nil,
			Choice{Slot: SlotB, Reason: "a demoted: demoted: 3 boots in a row were not confirmed (mark-good); highest priority (2), good (boot 1 since the last mark-good)",
				Good: true, Unconfirmed: 1, Demoted: SlotA, Changed: true},
			st(SlotState{Priority: 1, Good: true, Reason: "demoted: 3 boots in a row were not confirmed (mark-good)"}, SlotState{Priority: 2, Good: true, Unconfirmed: 1}), ""},
		{"last good slot unconfirmed: kept, the other is only on trial",
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 7}, SlotState{Priority: 1, Tries: 2}), "", nil,
			Choice{Slot: SlotA, Reason: "highest priority (2), good (boot 8 since the last mark-good)", Good: true, Unconfirmed: 8, Changed: true},
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 8}, SlotState{Priority: 1, Tries: 2}), ""},
		{"last good slot unconfirmed: demoted below a trial good in the data partition's copy, which is tried, its try counted",
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 7}, restored), "", nil,
			Choice{Slot: SlotB, Reason: "a demoted: demoted: 7 boots in a row were not confirmed (mark-good); highest priority (2), not yet good: 1 try left",
				TriesLeft: 1, Demoted: SlotA, Changed: true},
			st(SlotState{Priority: 1, Good: true, Reason: "demoted: 7 boots in a row were not confirmed (mark-good)"}, SlotState{Priority: 2, Tries: 1, Reason: ReasonRestoredGood}), ""},
		{"last good slot unconfirmed, the restored trial's tries spent: kept, the trial its fallback again, once",
			st(SlotState{Priority: 1, Good: true, Unconfirmed: 7}, SlotState{Priority: 2, Reason: ReasonRestoredGood}), "", nil,
			Choice{Slot: SlotA, Reason: "highest priority (2), good (boot 8 since the last mark-good)", Good: true, Unconfirmed: 8, Changed: true},
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 8}, SlotState{Priority: 1, Tries: DefaultTries, Reason: ReasonRestoredUnconfirmed}), ""},
		{"the restored trial's fallback tries spent too: retired",
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 7}, SlotState{Priority: 1, Reason: ReasonRestoredUnconfirmed}), "", nil,
			Choice{Slot: SlotA, Reason: "b cannot boot (retired: tries exhausted: never marked good); a has priority 2, good (boot 8 since the last mark-good)", Good: true, Unconfirmed: 8, Changed: true},
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 8}, SlotState{Reason: ReasonTriesExhausted}), ""},
		{"last good slot unconfirmed, the trial failed in this boot: kept",
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 7}, restored), "", []Slot{SlotB},
			Choice{Slot: SlotA, Reason: "fallback: b failed in this boot; a has priority 2, good (boot 8 since the last mark-good)", Good: true, Unconfirmed: 8, Changed: true},
			st(SlotState{Priority: 2, Good: true, Unconfirmed: 8}, restored), ""},
		{"b on trial, last try", st(good, SlotState{Priority: 2, Tries: 1}), "", nil,
			Choice{Slot: SlotB, Reason: "highest priority (2), not yet good: 0 tries left", TriesLeft: 0, Changed: true},
			st(good, SlotState{Priority: 2}), ""},
		{"b exhausted: rollback to a", st(good, SlotState{Priority: 2}), "", nil,
			Choice{Slot: SlotA, Reason: "b cannot boot (retired: tries exhausted: never marked good); a has priority 1, good (boot 1 since the last mark-good)", Good: true, Unconfirmed: 1, Changed: true},
			st(SlotState{Priority: 1, Good: true, Unconfirmed: 1}, SlotState{Reason: ReasonTriesExhausted}), ""},
		{"tie: a", st(SlotState{Priority: 1, Tries: 1}, good), "", nil,
			Choice{Slot: SlotA, Reason: "highest priority (1), not yet good: 0 tries left", Changed: true},
			st(SlotState{Priority: 1}, good), ""},
		{"fallback after b failed", st(good, trial), "", []Slot{SlotB},
			Choice{Slot: SlotA, Reason: "fallback: b failed in this boot; a has priority 1, good (boot 1 since the last mark-good)", Good: true, Unconfirmed: 1, Changed: true},
			st(SlotState{Priority: 1, Good: true, Unconfirmed: 1}, trial), ""},
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
		got, err := s.Choose(tt.forced, 0, tt.exclude...)
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

// TestRollbackScenario walks the update flow of docs/formats.md ("Choosing a slot") through Choose alone.
func TestRollbackScenario(t *testing.T) {
	s := DefaultState()
	boot := func() Slot {
		c, err := s.Choose("", 0)
		if err != nil {
			t.Fatal(err)
		}
		return c.Slot
	}
	if boot() != SlotA {
		t.Fatal("fresh disk does not boot a")
	}
	must(t, s.MarkGood(SlotA, "img-1", 0))
	must(t, s.SetNext(SlotB, 3, ""))
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
	must(t, s.SetNext(SlotB, 3, ""))
	boot()
	must(t, s.MarkGood(SlotB, "img-2", 0))
	for i := 0; i < 5; i++ {
		if got := boot(); got != SlotB {
			t.Fatalf("good b lost to %s", got)
		}
		must(t, s.MarkGood(SlotB, "img-2", 0))
	}
	// b stops being confirmed (corruption deep in its image restarts the
	// machine before mark-good): after DefaultMaxUnconfirmed boots the
	// good a takes over, and b is still good, below it.
	must(t, s.MarkGood(SlotA, "img-1", 0))
	must(t, s.MarkGood(SlotB, "img-2", 0))
	for i := 0; i < DefaultMaxUnconfirmed; i++ {
		if got := boot(); got != SlotB {
			t.Fatalf("unconfirmed boot %d: %s booted, want b", i+1, got)
		}
	}
	if got := boot(); got != SlotA {
		t.Fatalf("after %d unconfirmed boots of b, %s booted, want a", DefaultMaxUnconfirmed, got)
	}
	if b := s.Slot(SlotB); !b.Good || b.Priority != 1 || !strings.Contains(b.Reason, "demoted") {
		t.Errorf("b after demotion: %+v", b)
	}
}

func TestSelect(t *testing.T) {
	fail := func(bad ...Slot) func(Choice) error {
		return func(c Choice) error {
			for _, b := range bad {
				if c.Slot == b {
					return Classify(Image, "header", errors.New("verity-"+string(b)+": header signature does not verify"))
				}
			}
			return nil
		}
	}
	m := NewMemStore(BootStateMinSize)
	sel, err := Select(m, mustLoad(t, m), Request{}, fail(SlotA))
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

	sel, err = Select(m, mustLoad(t, m), Request{}, fail(SlotB))
	if !errors.Is(err, ErrNoBootableSlot) || len(sel.Fallbacks) != 1 || sel.Choice.Slot != "" {
		t.Errorf("both bad: %+v, %v", sel, err)
	}
	if got := mustLoad(t, m); got.Bootable(SlotA) || got.Bootable(SlotB) {
		t.Errorf("both bad, saved %+v", got)
	}

	before := mustLoad(t, m)
	sel, err = Select(m, mustLoad(t, m), Request{Forced: SlotB}, fail())
	if err != nil || sel.Choice.Slot != SlotB || !sel.Choice.Forced || mustLoad(t, m) != before {
		t.Errorf("slot=b: %+v, %v; state must stay %+v", sel, err, before)
	}
	sel, err = Select(m, mustLoad(t, m), Request{Forced: SlotA}, fail(SlotA))
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
	sel, err := Select(roStore{m}, mustLoad(t, m), Request{}, func(Choice) error { tried++; return nil })
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

// TestSelectFailureClasses: only image faults retire a slot; environment
// faults leave both slots exactly as they were (their try or unconfirmed
// boot given back); the last good slot is never retired.
func TestSelectFailureClasses(t *testing.T) {
	env := func(c Choice) error {
		return Classify(Environment, "image device", errors.New("root-"+string(c.Slot)+": no device within rd.timeout"))
	}
	img := func(c Choice) error {
		return Classify(Image, "verity", errors.New("verity-"+string(c.Slot)+": root hash mismatch"))
	}
	only := func(x Slot, f func(Choice) error) func(Choice) error {
		return func(c Choice) error {
			if c.Slot == x {
				return f(c)
			}
			return nil
		}
	}
	goodGood := st(SlotState{Priority: 2, Good: true}, SlotState{Priority: 1, Good: true})
	goodTrial := st(SlotState{Priority: 1, Good: true}, SlotState{Priority: 2, Tries: 2})
	tests := []struct {
		name      string
		in        State
		try       func(Choice) error
		wantSlot  Slot
		wantErr   bool
		wantState [2]SlotState
		wantWarn  string
	}{
		{"env fault on good a: b boots, a untouched", goodGood, only(SlotA, env), SlotB, false,
			[2]SlotState{{Priority: 2, Good: true}, {Priority: 1, Good: true, Unconfirmed: 1}}, ""},
		{"env fault on both: nothing boots, nothing changed", goodGood, env, "", true,
			[2]SlotState{{Priority: 2, Good: true}, {Priority: 1, Good: true}}, ""},
		{"env fault on a trial: its try given back", goodTrial, only(SlotB, env), SlotA, false,
			[2]SlotState{{Priority: 1, Good: true, Unconfirmed: 1}, {Priority: 2, Tries: 2}}, ""},
		{"image fault on a trial: retired", goodTrial, only(SlotB, img), SlotA, false,
			[2]SlotState{{Priority: 1, Good: true, Unconfirmed: 1}, {Reason: "verity-b: root hash mismatch"}}, ""},
		{"image fault on good a with good b: a retired", goodGood, only(SlotA, img), SlotB, false,
			[2]SlotState{{Reason: "verity-a: root hash mismatch"}, {Priority: 1, Good: true, Unconfirmed: 1}}, ""},
		{"image fault on the last good slot: kept", goodTrial, img, "", true,
			[2]SlotState{{Priority: 1, Good: true, Unconfirmed: 1}, {Reason: "verity-b: root hash mismatch"}}, "slot a is the last good slot"},
		// a fails first (environment: its disk late), then good b has an
		// image fault: a did not boot, so b is kept (it was retired,
		// leaving a whose last attempt failed as the only slot).
		{"env fault on good a, image fault on good b: b kept", goodGood, func(c Choice) error {
			if c.Slot == SlotA {
				return env(c)
			}
			return img(c)
		}, "", true,
			[2]SlotState{{Priority: 2, Good: true}, {Priority: 1, Good: true, Unconfirmed: 1}}, "slot b is the last good slot"},
		// The other order: a's image fault comes first, then b's disk is
		// late. a is not retired before b boots, and b never does: a is
		// kept (it was retired, leaving b alone).
		{"image fault on good a, env fault on good b: a kept", goodGood, func(c Choice) error {
			if c.Slot == SlotA {
				return img(c)
			}
			return env(c)
		}, "", true,
			[2]SlotState{{Priority: 2, Good: true, Unconfirmed: 1}, {Priority: 1, Good: true}}, "slot a is good: kept despite an image fault"},
		{"unclassified error: an environment fault", goodGood, only(SlotA, func(Choice) error { return errors.New("EBUSY") }), SlotB, false,
			[2]SlotState{{Priority: 2, Good: true}, {Priority: 1, Good: true, Unconfirmed: 1}}, ""},
	}
	for _, tt := range tests {
		m := NewMemStore(BootStateMinSize)
		s := tt.in
		if err := Save(m, &s); err != nil {
			t.Fatal(err)
		}
		sel, err := Select(m, mustLoad(t, m), Request{}, tt.try)
		if (err != nil) != tt.wantErr || sel.Choice.Slot != tt.wantSlot {
			t.Errorf("%s: booted %q, err %v; want %q (error %v)", tt.name, sel.Choice.Slot, err, tt.wantSlot, tt.wantErr)
		}
		if got := mustLoad(t, m); got.Slots != tt.wantState {
			t.Errorf("%s: saved\n %+v\nwant\n %+v", tt.name, got.Slots, tt.wantState)
		}
		if tt.wantWarn != "" && !strings.Contains(strings.Join(sel.Warnings, "\n"), tt.wantWarn) {
			t.Errorf("%s: warnings %q, want %q", tt.name, sel.Warnings, tt.wantWarn)
		}
		for _, f := range sel.Fallbacks {
			lastGood := strings.Contains(tt.wantWarn, "slot "+string(f.Slot)+" is the last good slot") ||
				strings.Contains(tt.wantWarn, "slot "+string(f.Slot)+" is good: kept")
			if f.Retired != (f.Class == Image && !lastGood) {
				t.Errorf("%s: fallback %+v: retired does not follow its class", tt.name, f)
			}
		}
	}
}

// TestSelectRecordsData: the first boot with a data partition records it
// in the same write as the choice; a forced slot records nothing.
func TestSelectRecordsData(t *testing.T) {
	m := NewMemStore(BootStateMinSize)
	ok := func(Choice) error { return nil }
	if _, err := Select(m, mustLoad(t, m), Request{Forced: SlotA, DataUsed: true}, ok); err != nil {
		t.Fatal(err)
	}
	if mustLoad(t, m).DataSeen {
		t.Error("slot= recorded the data partition: it must leave the state alone")
	}
	if _, err := Select(m, mustLoad(t, m), Request{DataUsed: true}, ok); err != nil {
		t.Fatal(err)
	}
	if s := mustLoad(t, m); !s.DataSeen || s.Seq != 1 {
		t.Errorf("after a counted boot with data: %+v, want DataSeen in one write", s)
	}
}

// TestSelectEndsDataMount: the boot's mount of the data partition
// (BeginDataMount) stays counted while the slot's attempt prepares the data
// partition for the new root, and ends once it returned, whatever the
// outcome; a boot without a data partition ends it in the write of the
// choice; a forced slot leaves the state alone. Before, the choice's write
// ended it, so a boot that hung in the /var seed or the /etc merge was
// not counted.
func TestSelectEndsDataMount(t *testing.T) {
	m := NewMemStore(BootStateMinSize)
	ok := func(Choice) error { return nil }
	s := mustLoad(t, m)
	for range DataMountLimit {
		if s.DataMountUnfinished() {
			t.Fatalf("after %d unfinished mounts: already at the limit", s.UnfinishedDataMounts)
		}
		s.BeginDataMount()
		if err := Save(m, &s); err != nil {
			t.Fatal(err)
		}
	}
	if s = mustLoad(t, m); !s.DataMountUnfinished() || s.UnfinishedDataMounts != DataMountLimit {
		t.Fatalf("after %d unfinished mounts: %+v, want DataMountUnfinished", DataMountLimit, s)
	}
	if _, err := Select(m, s, Request{Forced: SlotB, DataUsed: true}, ok); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, m); got.UnfinishedDataMounts != DataMountLimit || got.Seq != s.Seq {
		t.Errorf("slot= changed the state: %+v", got)
	}
	if _, err := Select(m, s, Request{}, ok); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, m); got.UnfinishedDataMounts != 0 || got.Seq != s.Seq+1 {
		t.Errorf("after a counted boot without a data partition: %+v, want no unfinished mount, in one write", got)
	}

	envFault := func(Choice) error { return Classify(Environment, "x", errors.New("late disk")) }
	imgFault := func(Choice) error { return Classify(Image, "x", errors.New("bad hash")) }
	twoGood := st(SlotState{Priority: 2, Good: true}, SlotState{Priority: 1, Good: true})
	for _, tc := range []struct {
		name    string
		state   State
		try     func(Choice) error
		retired []Slot
	}{
		{"booted", DefaultState(), ok, nil},
		{"no slot booted", DefaultState(), envFault, nil},
		{"a good slot retired after the other booted", twoGood, func(c Choice) error {
			if c.Slot == SlotA {
				return imgFault(c)
			}
			return nil
		}, []Slot{SlotA}},
	} {
		m := NewMemStore(BootStateMinSize)
		s := tc.state
		s.BeginDataMount()
		if err := Save(m, &s); err != nil {
			t.Fatal(err)
		}
		var during []uint8
		var lastSeq uint64
		settled := false
		req := Request{DataUsed: true, AfterAttempts: func() {
			if settled || mustLoad(t, m).UnfinishedDataMounts != 1 {
				t.Errorf("%s: AfterAttempts ran twice, or after the count was ended", tc.name)
			}
			settled = true
		}}
		sel, err := Select(m, s, req, func(c Choice) error {
			stored := mustLoad(t, m)
			during, lastSeq = append(during, stored.UnfinishedDataMounts), stored.Seq
			return tc.try(c)
		})
		if len(during) == 0 || slices.ContainsFunc(during, func(n uint8) bool { return n != 1 }) {
			t.Errorf("%s: unfinished data mounts stored during the attempts: %v, want 1 in each", tc.name, during)
		}
		if !settled {
			t.Errorf("%s: AfterAttempts did not run", tc.name)
		}
		got := mustLoad(t, m)
		if got.UnfinishedDataMounts != 0 || got != sel.State {
			t.Errorf("%s: after the attempts: stored %+v, selection %+v: want no unfinished mount, stored", tc.name, got, sel.State)
		}
		if err == nil && got.Seq != lastSeq+1 {
			t.Errorf("%s: %d writes after the last attempt began, want 1: the end of the count and the retirements in one", tc.name, got.Seq-lastSeq)
		}
		for _, x := range tc.retired {
			if got.Slot(x).Priority != 0 {
				t.Errorf("%s: slot %s: %+v, want it retired in the same write", tc.name, x, got.Slot(x))
			}
		}
	}
	s = State{UnfinishedDataMounts: 254}
	s.BeginDataMount()
	s.BeginDataMount()
	if s.UnfinishedDataMounts != 255 {
		t.Errorf("BeginDataMount past 255: %d, want it to stay at 255", s.UnfinishedDataMounts)
	}
}

// FuzzSelect feeds any stored state and any sequence of attempt outcomes to
// Select: it never panics, tries first a slot boot counting may choose
// (Boots) and then only the other one, never retires the last good slot, and an environment fault never changes a
// slot's good flag or priority. A boot with a data partition keeps its
// mount counted while the attempts run; every boot ends it. A forced slot
// (slot=) is the only one tried; with PreferGood, a slot on trial is tried
// first only when no good slot has a priority.
func FuzzSelect(f *testing.F) {
	f.Add(MarshalRecord(DefaultState()), uint8(0), uint8(3), false, uint8(0), false)
	f.Add(MarshalRecord(st(SlotState{Priority: 2, Good: true, Unconfirmed: 3}, SlotState{Priority: 1, Good: true})), uint8(5), uint8(0), true, uint8(0), false)
	f.Add(MarshalRecord(State{Slots: [2]SlotState{}, UnfinishedDataMounts: 2}), uint8(0), uint8(0), true, uint8(1), false)
	f.Add(MarshalRecord(State{Initialised: true, Slots: [2]SlotState{{Priority: 1, Good: true}, {Priority: 2, Tries: 1}}, UnfinishedDataMounts: 1}), uint8(6), uint8(0), true, uint8(0), true)
	f.Add(MarshalRecord(State{Initialised: true, Slots: [2]SlotState{{Priority: 0, Good: true}, {Priority: 2, Tries: 1}}}), uint8(2), uint8(0), false, uint8(2), true)
	f.Fuzz(func(t *testing.T, rec []byte, outcomes uint8, maxUnconfirmed uint8, dataUsed bool, forcedByte uint8, preferGood bool) {
		forced := append([]Slot{""}, Slots()...)[int(forcedByte)%3]
		m := NewMemStore(BootStateMinSize)
		copy(m.Bytes(), sealed(rec))
		state, _, _ := Load(m)
		before := state
		n := 0
		var envSlots []Slot
		var tried []Slot
		sel, _ := Select(m, state, Request{Forced: forced, MaxUnconfirmed: int(maxUnconfirmed), DataUsed: dataUsed, PreferGood: preferGood}, func(c Choice) error {
			tried = append(tried, c.Slot)
			stored, _, err := Load(m)
			if err != nil {
				t.Fatalf("attempt of slot %s: the stored state does not load: %v", c.Slot, err)
			}
			// A forced boot (slot=) leaves the counters as they are.
			if want := map[bool]uint8{true: before.UnfinishedDataMounts}[dataUsed || forced != ""]; stored.UnfinishedDataMounts != want {
				t.Fatalf("attempt of slot %s (data partition used: %v): %d unfinished data mounts stored, want %d: %+v", c.Slot, dataUsed, stored.UnfinishedDataMounts, want, before)
			}
			o := outcomes >> (2 * n) & 3
			n++
			switch o {
			case 1:
				envSlots = append(envSlots, c.Slot)
				return Classify(Environment, "x", errors.New("env"))
			case 2:
				return Classify(Image, "x", errors.New("img"))
			}
			return nil
		})
		if n > 2 {
			t.Fatalf("%d attempts in one boot", n)
		}
		if forced != "" && (len(tried) > 1 || len(tried) == 1 && tried[0] != forced) {
			t.Fatalf("slot=%s: tried %v", forced, tried)
		}
		if forced == "" && len(tried) > 0 && !before.Boots(tried[0]) {
			t.Fatalf("tried %s first, which boot counting may not choose: %+v", tried[0], before)
		}
		if len(tried) == 2 && tried[0] == tried[1] {
			t.Fatalf("tried %s twice in one boot", tried[0])
		}
		if forced == "" && preferGood && len(tried) > 0 && !before.Slot(tried[0]).Good {
			if o := before.Slot(tried[0].Other()); o.Good && o.Priority > 0 {
				t.Fatalf("PreferGood tried %s, on trial, first while %s is good with priority %d: %+v", tried[0], tried[0].Other(), o.Priority, before)
			}
		}
		after := sel.State
		if forced != "" && after.UnfinishedDataMounts != before.UnfinishedDataMounts {
			t.Fatalf("slot=%s changed the unfinished data mounts: %+v → %+v", forced, before, after)
		}
		if forced == "" && after.UnfinishedDataMounts != 0 {
			t.Fatalf("the choice of a slot left %d unfinished data mounts: %+v → %+v", after.UnfinishedDataMounts, before, after)
		}
		for _, x := range Slots() {
			if before.Slot(x).Good && !after.Slot(x).Good && !before.Slot(x.Other()).Good {
				t.Fatalf("slot %s, the only good slot, lost its good flag: %+v → %+v", x, before, after)
			}
		}
		for _, x := range envSlots {
			b, a := before.Slot(x), after.Slot(x)
			if a.Good != b.Good || (a.Priority == 0 && b.Priority != 0 && b.Bootable()) {
				t.Fatalf("environment fault changed slot %s: %+v → %+v", x, b, a)
			}
		}
	})
}

// TestGoodSlotNeverLostToSetNext: a slot retired, then booted with slot=
// and marked good (MarkGood leaves its priority 0), is the fallback of the
// next update: when the update's tries run out, it boots. SetNext used to
// leave it at priority 0, and no slot booted.
func TestGoodSlotNeverLostToSetNext(t *testing.T) {
	s := DefaultState()
	boot := func() Slot {
		t.Helper()
		c, err := s.Choose("", 0)
		if err != nil {
			t.Fatalf("no slot boots: %v (state %+v)", err, s.Slots)
		}
		return c.Slot
	}
	must(t, s.MarkBad(SlotA, "health check failed"))
	if c, err := s.Choose(SlotA, 0); err != nil || c.Slot != SlotA {
		t.Fatalf("slot=a: %+v, %v", c, err)
	}
	must(t, s.MarkGood(SlotA, "img-2", 0))
	must(t, s.MarkBad(SlotB, "install in progress"))
	must(t, s.SetNext(SlotB, 3, ""))
	for range 3 {
		if got := boot(); got != SlotB {
			t.Fatalf("b on trial: %s booted", got)
		}
	}
	if got := boot(); got != SlotA {
		t.Fatalf("b's tries ran out, then %s booted: want the good a", got)
	}
}

// TestGoodRetiredSlotIsLastResort: a slot retired, booted with slot= and
// marked good stays at priority 0 (the operator retired it), but when the
// other slot cannot boot — its tries run out before any set-next, or it
// fails in this boot — it boots rather than nothing; a slot that is not
// good never does.
func TestGoodRetiredSlotIsLastResort(t *testing.T) {
	s := DefaultState()
	must(t, s.MarkBad(SlotA, "health check failed"))
	must(t, s.MarkGood(SlotA, "img-2", 0)) // after a boot with slot=a
	s.Slots[1] = SlotState{Priority: 2, Tries: 1}
	if s.Boots(SlotA) || !s.Boots(SlotB) {
		t.Fatalf("b has a try: Boots a %v, b %v; want b only", s.Boots(SlotA), s.Boots(SlotB))
	}
	if c, err := s.Choose("", 0); err != nil || c.Slot != SlotB {
		t.Fatalf("b has a try: %+v, %v; want b", c, err)
	}
	if !s.Boots(SlotA) || s.Boots(SlotB) {
		t.Fatalf("b's tries are out: Boots a %v, b %v; want a only (the last resort)", s.Boots(SlotA), s.Boots(SlotB))
	}
	c, err := s.Choose("", 0)
	if err != nil || c.Slot != SlotA || !strings.Contains(c.Reason, "last resort") || s.Slot(SlotA).Unconfirmed != 1 {
		t.Fatalf("b's tries are out: %+v, %v (a %+v); want a as the last resort, its boot counted", c, err, s.Slot(SlotA))
	}
	s.Slots[1] = SlotState{Priority: 2, Tries: 3}
	if c, err := s.Choose("", 0, SlotB); err != nil || c.Slot != SlotA {
		t.Fatalf("b failed in this boot: %+v, %v; want a", c, err)
	}
	if _, err := s.Choose("", 0, SlotA, SlotB); !errors.Is(err, ErrNoBootableSlot) {
		t.Fatalf("both failed in this boot: %v, want ErrNoBootableSlot", err)
	}
	s.Slots[0].Good = false
	s.Slots[1] = SlotState{Reason: "verity"}
	if _, err := s.Choose("", 0); !errors.Is(err, ErrNoBootableSlot) {
		t.Fatalf("a retired and not good: %v, want ErrNoBootableSlot", err)
	}
}

// TestSetNextKeepsTheOnlyGoodSlot: a is on trial with an update, b is the
// only good slot, and the operator rolls back (set-next b, or RAUC's
// mark-active other). b boots next and stays good: boots it never confirms
// (a health check failing, the network down during the rollout) cannot
// retire it. SetNext used to put it on trial, the machine had no good slot,
// and once its three tries and a's remaining ones ran out no slot booted.
// A slot written since it was confirmed (its header's image id no longer
// the last good one) goes on trial as any new image.
func TestSetNextKeepsTheOnlyGoodSlot(t *testing.T) {
	s := DefaultState()
	must(t, s.MarkGood(SlotB, "img-1", 0))
	must(t, s.MarkBad(SlotA, "install in progress"))
	must(t, s.SetNext(SlotA, 3, ""))
	if c, err := s.Choose("", 0); err != nil || c.Slot != SlotA {
		t.Fatalf("the update's trial: %+v, %v", c, err)
	}
	if err := s.SetNext(SlotB, 3, ""); err != nil {
		t.Fatal(err)
	}
	if b := s.Slot(SlotB); !b.Good || b.Priority != 2 || b.Unconfirmed != 0 {
		t.Fatalf("b after set-next: %+v, want good at the top priority", b)
	}
	for i := range 20 {
		c, err := s.Choose("", 0)
		if err != nil {
			t.Fatalf("boot %d without a confirmation: %v (state %+v)", i+1, err, s.Slots)
		}
		if !s.Slot(SlotB).Good {
			t.Fatalf("boot %d (%s): b is no longer good: %+v", i+1, c.Slot, s.Slots)
		}
	}
	// Written since it was confirmed (rauc write-slot, dd): a trial.
	s = DefaultState()
	must(t, s.MarkGood(SlotB, "img-1", 0))
	must(t, s.SetNext(SlotA, 3, ""))
	if _ = s.SetNext(SlotB, 3, "img-9"); s.Slot(SlotB).Good {
		t.Errorf("b holding img-9, the last good image img-1 of b: %+v, want b on trial", s.Slot(SlotB))
	}
	for _, id := range []string{"img-1", ""} {
		s = DefaultState()
		must(t, s.MarkGood(SlotB, "img-1", 0))
		must(t, s.SetNext(SlotA, 3, ""))
		if _ = s.SetNext(SlotB, 3, id); !s.Slot(SlotB).Good {
			t.Errorf("b holding %q, the last good image img-1 of b: %+v, want b good", id, s.Slot(SlotB))
		}
	}
	// With both slots good, set-next still puts a slot on trial: the other
	// good slot is its fallback.
	s = DefaultState()
	must(t, s.MarkGood(SlotA, "img-1", 0))
	must(t, s.MarkGood(SlotB, "img-2", 0))
	must(t, s.SetNext(SlotA, 2, ""))
	if a := s.Slot(SlotA); a.Good || a.Tries != 2 || !s.Slot(SlotB).Good {
		t.Errorf("set-next a with b good: %+v, want a on trial and b good", s.Slots)
	}
}

// restart is a boot the kernel restarted (dm-verity's restart_on_corruption,
// a watchdog): what Select wrote before it stays, nothing after.
type restart struct{}

// simulateBoot is one boot as the init runs it (init/data.go, root_slot.go)
// against the state in m: the data partition's mount counted before it
// begins, or left alone after DataMountLimit unfinished ones (the boot then
// prefers a good slot); attempt says whether the slot's attempt, with or
// without the data partition, comes up (true), fails (false) or restarts
// the machine (panic(restart{})). A boot that came up is confirmed, as
// keel-mark-good does. It returns the slot that came up, "" if none, and
// whether the data partition was used.
func simulateBoot(t *testing.T, m *MemStore, attempt func(x Slot, data bool) bool) (booted Slot, data bool) {
	t.Helper()
	s := mustLoad(t, m)
	data = !s.DataMountUnfinished()
	if data {
		s.BeginDataMount()
		if err := Save(m, &s); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(restart); !ok {
				panic(r)
			}
			booted = ""
		}
	}()
	sel, err := Select(m, s, Request{DataUsed: data, PreferGood: !data}, func(c Choice) error {
		if !attempt(c.Slot, data) {
			return Classify(Environment, "x", errors.New("failed"))
		}
		return nil
	})
	if err != nil {
		return "", data
	}
	s = sel.State
	if err := s.MarkGood(sel.Choice.Slot, "img-"+string(sel.Choice.Slot), 0); err != nil {
		t.Fatal(err)
	}
	if err := Save(m, &s); err != nil {
		t.Fatal(err)
	}
	return sel.Choice.Slot, data
}

// TestTrialRestartingInTheDataWorkRollsBack: slot a is good, slot b an
// update on trial whose image restarts the machine in the data work (a
// corrupt block of its /etc, read only by the /etc merge, with dm-verity's
// restart_on_corruption). Those boots are counted as unfinished data
// mounts; the boot that then leaves the data partition alone must not boot
// b, whose merge it skips and which would come up and be confirmed: it
// boots a, good. b spends its tries in the boots with the data partition
// and is retired; a is never lost and b never confirmed. A review found
// the first form of the count booting b volatile and confirming it every
// third boot.
func TestTrialRestartingInTheDataWorkRollsBack(t *testing.T) {
	m := NewMemStore(BootStateMinSize)
	s := DefaultState()
	if err := s.MarkGood(SlotA, "img-a", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNext(SlotB, DefaultTries, "img-b"); err != nil {
		t.Fatal(err)
	}
	if err := Save(m, &s); err != nil {
		t.Fatal(err)
	}
	var trace []string
	for n := 1; n <= 12; n++ {
		booted, data := simulateBoot(t, m, func(x Slot, data bool) bool {
			if x == SlotB && data {
				panic(restart{}) // the merge reads the corrupt block
			}
			return true
		})
		trace = append(trace, fmt.Sprintf("%d: %q data %v", n, booted, data))
		got := mustLoad(t, m)
		if got.Slot(SlotB).Good {
			t.Fatalf("b, whose image restarts the machine, was confirmed: %v; %+v", trace, got)
		}
		if !got.Slot(SlotA).Good || !got.Slot(SlotA).Bootable() {
			t.Fatalf("a, good, was lost: %v; %+v", trace, got)
		}
		if booted == SlotB {
			t.Fatalf("b came up without its data partition: %v", trace)
		}
	}
	got := mustLoad(t, m)
	if got.Slot(SlotB).Bootable() || got.UnfinishedDataMounts != 0 {
		t.Errorf("after 12 boots: %+v: want b retired (its tries spent), a booting with the data partition", got)
	}
	if last := trace[len(trace)-1]; last != `12: "a" data true` {
		t.Errorf("last boot %s: want a, with the data partition (%v)", last, trace)
	}
}

// TestPreferGood: with PreferGood a good slot boots before a slot on
// trial of higher priority, and says why; without a good slot, or when the
// good slot failed in this boot, the trial boots.
func TestPreferGood(t *testing.T) {
	ok := func(Choice) error { return nil }
	for _, tc := range []struct {
		name  string
		state State
		try   func(Choice) error
		want  Slot
	}{
		{"good before trial", st(SlotState{Priority: 1, Good: true}, SlotState{Priority: 2, Tries: 2}), ok, SlotA},
		{"no good slot", st(SlotState{Priority: 1, Tries: 3}, SlotState{Priority: 2, Tries: 2}), ok, SlotB},
		{"the good slot fails", st(SlotState{Priority: 1, Good: true}, SlotState{Priority: 2, Tries: 2}), func(c Choice) error {
			if c.Slot == SlotA {
				return Classify(Environment, "x", errors.New("late disk"))
			}
			return nil
		}, SlotB},
	} {
		m := NewMemStore(BootStateMinSize)
		sel, err := Select(m, tc.state, Request{PreferGood: true}, tc.try)
		if err != nil || sel.Choice.Slot != tc.want {
			t.Errorf("%s: %+v, %v: want %s", tc.name, sel.Choice, err, tc.want)
		}
		if tc.name == "good before trial" && !strings.Contains(sel.Choice.Reason, "a is good: it boots before b, on trial, while the data partition is left alone") {
			t.Errorf("%s: reason %q: want why", tc.name, sel.Choice.Reason)
		}
	}
}

// TestCrashingLastGoodTriesTheOther: the bootstate partition was lost and
// restored from the data partition's copy, which names b's image as last
// good and no image for a (a trial after Restore), though a still holds
// the image that worked before. b's image then crashes after switch_root
// at every boot (a corrupt block deep in it): after the limit of
// unconfirmed boots a is tried, its tries counted. If a works, it is
// confirmed; if it crashes too, its tries run out and b, still good, boots
// again, for good (there is nothing else). b used to boot for ever while
// a was never tried (docs/formats.md, "The data partition's copy").
func TestCrashingLastGoodTriesTheOther(t *testing.T) {
	c := st(SlotState{Priority: 1, Good: true}, SlotState{Priority: 2, Good: true})
	c.LastGood = LastGood{Slot: SlotB, ImageID: "B1"}
	restored, ok := Restore(c, DefaultState())
	if !ok {
		t.Fatal("Restore refused the copy")
	}
	for _, aWorks := range []bool{true, false} {
		t.Run(fmt.Sprintf("a-works-%v", aWorks), func(t *testing.T) {
			s := restored
			st := NewMemStore(BootStateMinSize)
			boot := func() Slot {
				t.Helper()
				sel, err := Select(st, s, Request{}, func(Choice) error { return nil })
				if err != nil {
					t.Fatal(err)
				}
				s = sel.State
				return sel.Choice.Slot
			}
			var got []Slot
			for range DefaultMaxUnconfirmed {
				got = append(got, boot()) // b crashes after switch_root: never confirmed
			}
			got = append(got, boot())
			if !aWorks {
				for range DefaultTries - 1 + 4 {
					got = append(got, boot()) // a crashes too
				}
				want := []Slot{SlotB, SlotB, SlotB, SlotA, SlotA, SlotA, SlotB, SlotB, SlotB, SlotB}
				if !slices.Equal(got, want) {
					t.Fatalf("boots %v, want %v", got, want)
				}
				if a, b := s.Slot(SlotA), s.Slot(SlotB); !b.Good || !s.Bootable(SlotB) || a != (SlotState{Priority: 1, Tries: DefaultTries, Reason: ReasonRestoredUnconfirmed}) {
					t.Errorf("after a's tries ran out: a %+v, b %+v; want b good and first, a its fallback, once", a, b)
				}
				// b then fails in the initramfs: a, which the copy called
				// good, is tried (its tries may have been spent by boots
				// the environment left unconfirmed).
				sel, err := Select(st, s, Request{}, func(c Choice) error {
					if c.Slot == SlotB {
						return Classify(Image, "verity", errors.New("bad block"))
					}
					return nil
				})
				if err != nil || sel.Choice.Slot != SlotA {
					t.Errorf("b failing in the initramfs: %+v, %v; want a, the fallback", sel.Choice, err)
				}
				return
			}
			must(t, s.MarkGood(SlotA, "A1", 0))
			got = append(got, boot())
			if want := []Slot{SlotB, SlotB, SlotB, SlotA, SlotA}; !slices.Equal(got, want) {
				t.Fatalf("boots %v, want %v", got, want)
			}
			if a, b := s.Slot(SlotA), s.Slot(SlotB); !a.Good || !b.Good || b.Priority >= a.Priority || !strings.Contains(b.Reason, "demoted") {
				t.Errorf("after a was confirmed: a %+v, b %+v: want both good, b demoted below a", a, b)
			}
		})
	}
}

// TestSecondRestoreKeepsTheMark: the bootstate partition is lost a second
// time after a restore. The copy slotctl wrote since (at b's mark-good)
// calls a a trial, with the first restore's mark: the second restore
// marks it again, so a crashing b does not boot for ever (found in
// review).
func TestSecondRestoreKeepsTheMark(t *testing.T) {
	c := st(SlotState{Priority: 1, Good: true}, SlotState{Priority: 2, Good: true})
	c.LastGood = LastGood{Slot: SlotB, ImageID: "B1"}
	s, _ := Restore(c, DefaultState())
	sel, err := Select(NewMemStore(BootStateMinSize), s, Request{}, func(Choice) error { return nil })
	if err != nil || sel.Choice.Slot != SlotB {
		t.Fatalf("first boot after the restore: %+v, %v", sel.Choice, err)
	}
	copy2 := sel.State
	must(t, copy2.MarkGood(SlotB, "B1", 0))
	s2, ok := Restore(copy2, DefaultState())
	if a := s2.Slot(SlotA); !ok || a.Reason != ReasonRestoredGood {
		t.Errorf("second restore: a %+v, %v; want the mark kept", a, ok)
	}
	copy2.Slots[0].Reason = ReasonRestoredUnconfirmed // tried since, never confirmed
	if s3, _ := Restore(copy2, DefaultState()); s3.Slot(SlotA).Reason != "" {
		t.Errorf("restore of a copy whose a was tried and never confirmed: a %+v; want no mark", s3.Slot(SlotA))
	}
}

// TestDemotedBelowTrialOnlyWhenCounted: counting in memory (no bootstate
// partition in this boot), a trial's try is forgotten with the boot, so a
// good slot at its limit of unconfirmed boots is not demoted below one,
// even one good in the data partition's copy: a trial that crashes the
// machine would be booted at every boot. Nor when the boot prefers the
// good slot (the data partition left alone): it would boot all the same,
// reported demoted (found in review).
func TestDemotedBelowTrialOnlyWhenCounted(t *testing.T) {
	s := st(SlotState{Priority: 2, Good: true, Unconfirmed: DefaultMaxUnconfirmed}, SlotState{Priority: 1, Tries: 3, Reason: ReasonRestoredGood})
	for _, tc := range []struct {
		req  Request
		want Slot
	}{{Request{}, SlotB}, {Request{InMemory: true}, SlotA}, {Request{PreferGood: true}, SlotA}} {
		sel, err := Select(NewMemStore(BootStateMinSize), s, tc.req, func(Choice) error { return nil })
		if err != nil || sel.Choice.Slot != tc.want || tc.want == SlotA && (sel.Choice.Demoted != "" || sel.State.Slot(SlotA).Priority != 2) {
			t.Errorf("%+v: %+v, %v, a %s; want slot %s, nothing demoted unless b boots", tc.req, sel.Choice, err, sel.State.Slot(SlotA), tc.want)
		}
	}
}

// TestNoDemotionBelowAnyTrial: a good slot whose boots go unconfirmed for
// a reason that is not its image's (the network a health check needs is
// down, the power cut before mark-good) is not demoted below a trial that
// was never good: after a deliberate rollback (set-next of the good slot),
// the update rolled back from would boot again unasked and, once
// confirmed, take the last good image and raise the rollback floor above
// the rollback's target; on a new machine, whatever the other slot holds
// would boot. Only a trial good in the data partition's copy is an
// alternative, and an operator's set-next ends that (found in review).
func TestNoDemotionBelowAnyTrial(t *testing.T) {
	boots := func(s State, n int) []Slot {
		t.Helper()
		m := NewMemStore(BootStateMinSize)
		var got []Slot
		for range n {
			sel, err := Select(m, s, Request{}, func(Choice) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			s = sel.State
			got = append(got, sel.Choice.Slot)
		}
		return got
	}
	rollback := DefaultState()
	must(t, rollback.MarkGood(SlotB, "B1", 3))
	must(t, rollback.MarkBad(SlotA, "install in progress"))
	must(t, rollback.SetNext(SlotA, 3, ""))
	if c, err := rollback.Choose("", 0); err != nil || c.Slot != SlotA {
		t.Fatalf("the update's first boot: %+v, %v", c, err)
	}
	must(t, rollback.SetNext(SlotB, 3, "B1"))
	newMachine := DefaultState()
	must(t, newMachine.MarkGood(SlotA, "A1", 0))
	c := st(SlotState{Priority: 1, Good: true}, SlotState{Priority: 2, Good: true})
	c.LastGood = LastGood{Slot: SlotB, ImageID: "B1"}
	restoredThenSetNext, _ := Restore(c, DefaultState())
	must(t, restoredThenSetNext.SetNext(SlotB, 3, "B1"))
	for name, tc := range map[string]struct {
		s    State
		want Slot
	}{"rollback": {rollback, SlotB}, "new machine": {newMachine, SlotA}, "restored, then set-next": {restoredThenSetNext, SlotB}} {
		if got := boots(tc.s, 2*DefaultMaxUnconfirmed+2); slices.ContainsFunc(got, func(x Slot) bool { return x != tc.want }) {
			t.Errorf("%s: boots %v, none confirmed: want %s at every one", name, got, tc.want)
		}
	}
}
