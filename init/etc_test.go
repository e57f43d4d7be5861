// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
)

// TestTrialToSetAside: only a boot of the last good image sets the other
// slot's uppers aside, and only when that slot is not good.
func TestTrialToSetAside(t *testing.T) {
	trial := func() bootstate.State { // a good, last good A1; b on trial
		s := bootstate.DefaultState()
		s.Initialised = true
		s.Slots[0] = bootstate.SlotState{Priority: 1, Good: true}
		s.LastGood = bootstate.LastGood{Slot: bootstate.SlotA, ImageID: "A1"}
		return s
	}
	for _, c := range []struct {
		name          string
		edit          func(*bootstate.State)
		slot, imageID string
		want          bootstate.Slot
	}{
		{"last good boots, b on trial", nil, "a", "A1", bootstate.SlotB},
		{"last good boots, b retired", func(s *bootstate.State) { s.Slots[1] = bootstate.SlotState{Reason: "verity"} }, "a", "A1", bootstate.SlotB},
		{"last good in b boots, a on trial", func(s *bootstate.State) {
			s.Slots[0], s.Slots[1] = s.Slots[1], s.Slots[0]
			s.LastGood.Slot = bootstate.SlotB
		}, "b", "A1", bootstate.SlotA},
		{"b good: its upper is a rollback target", func(s *bootstate.State) { s.Slots[1].Good = true }, "a", "A1", ""},
		{"b good and retired", func(s *bootstate.State) { s.Slots[1] = bootstate.SlotState{Good: true} }, "a", "A1", ""},
		{"the trial boots", nil, "b", "B1", ""},
		{"another image in the last good slot", nil, "a", "A2", ""},
		{"the last good id, booted from the other slot", nil, "b", "A1", ""},
		{"no image id", nil, "a", "", ""},
		{"no last good image", func(s *bootstate.State) { s.LastGood = bootstate.LastGood{} }, "a", "A1", ""},
		{"state not read (defaults)", func(s *bootstate.State) { s.Initialised = false }, "a", "A1", ""},
	} {
		s := trial()
		if c.edit != nil {
			c.edit(&s)
		}
		got, ok := trialToSetAside(s, c.slot, c.imageID)
		if ok != (c.want != "") || got != c.want && ok {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
}

// TestRollbackTargetNotSetAside: a and b good (B1 in b last marked good),
// the operator rolls back to a's image (slotctl set-next a puts a on
// trial), whose boots fail: the fallback to B1 sets aside only a's uppers
// merged from B1's /etc, never A1's own, which the rollback's next try must
// find as it was. It used to set aside every upper of a: the next try
// merged B1's /etc onto A1 (found by a hunting helper).
func TestRollbackTargetNotSetAside(t *testing.T) {
	st := bootstate.DefaultState()
	st.Initialised = true
	must(t, st.MarkGood("a", "A1", 0))
	must(t, st.MarkGood("b", "B1", 0))
	must(t, st.SetNext("a", 3, "A1"))
	other, ok := trialToSetAside(st, "b", "B1")
	if !ok || other != bootstate.SlotA {
		t.Fatalf("trialToSetAside = %q, %v: want slot a, on trial", other, ok)
	}
	stale := mergedFrom(st.LastGood)
	for _, c := range []struct {
		name   string
		record string
		err    error
		want   bool
	}{
		{"A1's own upper, merged from an older image", `{"from_slot":"b","from_image":"B0"}`, nil, false},
		{"a slot's first upper, no merge", "", fs.ErrNotExist, false},
		{"a trial merged from B1", `{"from_slot":"b","from_image":"B1"}`, nil, true},
		{"merged from B1's id in the other slot", `{"from_slot":"a","from_image":"B1"}`, nil, false},
		{"a record that cannot be read", "", errors.New("input/output error"), true},
		{"a record that cannot be parsed", "{", nil, true},
	} {
		var rec []byte
		if c.err == nil {
			rec = []byte(c.record)
		}
		if got := stale(rec, c.err); got != c.want {
			t.Errorf("%s: set aside %v, want %v", c.name, got, c.want)
		}
	}
}

// TestBootStateUnavailable: a bootstate partition that is late or cannot
// be read leaves the last good image unknown (no empty upper is made); one
// the system disk does not have, or that holds a file system, leaves none
// to wait for.
func TestBootStateUnavailable(t *testing.T) {
	for _, c := range []struct {
		why  error
		want bool
	}{
		{fmt.Errorf("bootstate device PARTLABEL=bootstate: the system disk /dev/vda has %w labelled bootstate", errNoSuchPartition), false},
		{fmt.Errorf("bootstate device /dev/vda7: %w: the device holds ext4", bootstate.ErrForeign), false},
		{fmt.Errorf("bootstate device on the system disk /dev/vda: %w (rd.timeout=30)", context.DeadlineExceeded), true},
		{fmt.Errorf("bootstate device /dev/vda5: reading: %w", unix.EIO), true},
	} {
		if got := unavailable(c.why); got != c.want {
			t.Errorf("unavailable(%v) = %v, want %v", c.why, got, c.want)
		}
	}
}

// TestMergeFrom: an old image that cannot be read where the merge needs it
// (a corrupt block is an I/O error on the base's mapping) makes the merge
// run again without a base, saying why; any other failure is the merge's.
func TestMergeFrom(t *testing.T) {
	const mnt = "/run/keel/base"
	eio := &fs.PathError{Op: "read", Path: mnt + "/etc/ssh/sshd_config", Err: unix.EIO}
	full := &fs.PathError{Op: "write", Path: "/run/keel/data/@overlay/b/B1.tmp/upper/etc/x", Err: unix.ENOSPC}
	for _, c := range []struct {
		name      string
		base      string
		first     error
		calls     []string
		noBase    string
		wantFirst bool
	}{
		{"base read error: merged without it", mnt + "/etc", fmt.Errorf("merge: %w", eio), []string{mnt + "/etc", ""}, "the old image could not be read (merge: read /run/keel/base/etc/ssh/sshd_config: input/output error)", false},
		{"a failure of the output stays", mnt + "/etc", full, []string{mnt + "/etc"}, "", true},
		{"no base: nothing to retry", "", eio, []string{""}, "", true},
		{"a path beside the mount is not under it", mnt + "/etc", &fs.PathError{Op: "read", Path: mnt + "x/etc/a", Err: unix.EIO}, []string{mnt + "/etc"}, "", true},
		{"success", mnt + "/etc", nil, []string{mnt + "/etc"}, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls []string
			noBase := ""
			err := mergeFrom(func(base string) error {
				if len(calls) == 1 && noBase == "" {
					t.Error("merged again without a base before saying why (the merge record would name the base)")
				}
				calls = append(calls, base)
				if len(calls) == 1 {
					return c.first
				}
				return nil
			}, c.base, mnt, func(why string) { noBase = why })
			if !slices.Equal(calls, c.calls) || noBase != c.noBase {
				t.Errorf("merges over %q, noBase %q; want %q, %q", calls, noBase, c.calls, c.noBase)
			}
			if c.wantFirst && err != c.first || !c.wantFirst && err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// TestInPlaceOrCopy: a merge in place in a snapshot that fails (an
// immutable file it must change) is run again by copying, saying why; a
// copying merge that fails, or a success, is not run again.
func TestInPlaceOrCopy(t *testing.T) {
	eperm := &fs.PathError{Op: "remove", Path: "/run/keel/data/@overlay/b/.B1.tmp/upper/etc/resolv.conf", Err: unix.EPERM}
	for _, c := range []struct {
		name    string
		inPlace bool
		fail    []error // what each merge returns, in turn
		modes   []bool  // in place, per merge run
		why     string
		err     error
	}{
		{"in place fails: copied", true, []error{eperm, nil}, []bool{true, false}, eperm.Error(), nil},
		{"both fail", true, []error{eperm, unix.ENOSPC}, []bool{true, false}, eperm.Error(), unix.ENOSPC},
		{"in place succeeds", true, []error{nil}, []bool{true}, "", nil},
		{"copying fails: not run again", false, []error{unix.ENOSPC}, []bool{false}, "", unix.ENOSPC},
		{"the retry refused: the first error stands", true, []error{eperm}, []bool{true}, "refused", eperm},
	} {
		t.Run(c.name, func(t *testing.T) {
			inPlace, why := c.inPlace, ""
			var modes []bool
			err := inPlaceOrCopy(&inPlace, func() error {
				modes = append(modes, inPlace)
				return c.fail[len(modes)-1]
			}, func(w string) bool {
				if c.why == "refused" {
					why = "refused"
					return false
				}
				why = w
				return true
			})
			if !slices.Equal(modes, c.modes) || why != c.why || !errors.Is(err, c.err) && err != c.err {
				t.Errorf("merges in place %v, why %q, err %v; want %v, %q, %v", modes, why, err, c.modes, c.why, c.err)
			}
		})
	}
}

// FuzzMergedFrom: whatever an upper's record holds (the data partition's
// bytes), the set-aside decision never panics; an upper without a record
// stays, one whose record cannot be read or parsed is set aside (moved,
// not lost), and a record the init wrote sets aside exactly the copies of
// the last good image's /etc.
func FuzzMergedFrom(f *testing.F) {
	f.Add([]byte(`{"from_slot":"b","from_image":"B1"}`), "b", "B1", "b", "B1")
	f.Add([]byte(`{"from_slot":"b","from_image":"B0"}`), "b", "B1", "a", "A")
	f.Add([]byte("\x00{"), "a", "x", "a", "x")
	f.Fuzz(func(t *testing.T, record []byte, lgSlot, lgID, fromSlot, fromImage string) {
		lg := bootstate.LastGood{Slot: bootstate.Slot(lgSlot), ImageID: lgID}
		stale := mergedFrom(lg)
		if stale(nil, fs.ErrNotExist) {
			t.Fatal("an upper no merge made was set aside")
		}
		if !stale(record, errors.New("EIO")) {
			t.Fatal("an upper whose record cannot be read was kept where the next boot reuses it")
		}
		m, err := report.ParseEtcMerge(record)
		if got := stale(record, nil); err != nil && !got || err == nil && got != (m.FromSlot == lgSlot && m.FromImage == lgID) {
			t.Fatalf("record %q (%+v, %v), last good %s/%s: set aside %v", record, m, err, lgSlot, lgID, got)
		}
		if !utf8.ValidString(fromSlot + fromImage + lgSlot + lgID) {
			return // slot names and image ids are checked text; JSON would replace such bytes
		}
		written, err := (&report.EtcMerge{FromSlot: fromSlot, FromImage: fromImage}).Marshal()
		if err != nil {
			return // not a string the writer takes
		}
		if got, want := stale(written, nil), fromSlot == lgSlot && fromImage == lgID; got != want {
			t.Fatalf("the init's record from %s/%s, last good %s/%s: set aside %v, want %v", fromSlot, fromImage, lgSlot, lgID, got, want)
		}
	})
}
