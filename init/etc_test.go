// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/report"
)

// The merge starts from a snapshot only when the old upper's upper/ and
// upper/etc are directories or absent: a symlink would not be in the
// snapshot as the merge reads it.
func TestPlainDirs(t *testing.T) {
	dir := t.TempDir()
	if !plainDirs(dir, "upper", "upper/etc") {
		t.Error("absent: want plain")
	}
	if err := os.MkdirAll(filepath.Join(dir, "upper", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !plainDirs(dir, "upper", "upper/etc") {
		t.Error("directories: want plain")
	}
	if err := os.Remove(filepath.Join(dir, "upper", "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "upper", "etc")); err != nil {
		t.Fatal(err)
	}
	if plainDirs(dir, "upper", "upper/etc") {
		t.Error("upper/etc a symlink: want not plain")
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if plainDirs(dir, "file") {
		t.Error("a file: want not plain")
	}
}

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
		{fmt.Errorf("bootstate device on the system disk /dev/vda: %w (rd.timeout=30s)", context.DeadlineExceeded), true},
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
	} {
		t.Run(c.name, func(t *testing.T) {
			inPlace, why := c.inPlace, ""
			var modes []bool
			err := inPlaceOrCopy(&inPlace, func() error {
				modes = append(modes, inPlace)
				return c.fail[len(modes)-1]
			}, func(w string) { why = w })
			if !slices.Equal(modes, c.modes) || why != c.why || !errors.Is(err, c.err) && err != c.err {
				t.Errorf("merges in place %v, why %q, err %v; want %v, %q, %v", modes, why, err, c.modes, c.why, c.err)
			}
		})
	}
}

// TestStaleTrial: a trial's existing upper is stale unless it was merged
// from the image last marked good (or made with none, when there is none),
// or is that image's own.
func TestStaleTrial(t *testing.T) {
	st := func() bootstate.State { // a/v3 good and last good; b on trial
		s := bootstate.DefaultState()
		s.Initialised = true
		s.Slots[0] = bootstate.SlotState{Priority: 1, Good: true}
		s.LastGood = bootstate.LastGood{Slot: bootstate.SlotA, ImageID: "v3"}
		return s
	}
	from := func(slot, id string) *report.EtcMerge { return &report.EtcMerge{FromSlot: slot, FromImage: id} }
	for _, c := range []struct {
		name          string
		edit          func(*bootstate.State)
		slot, imageID string
		rec           *report.EtcMerge
		known         bool
		want          bool
	}{
		{"reinstalled: merged from an older last good", nil, "b", "v2", from("a", "v1"), true, true},
		{"an earlier boot of this trial", nil, "b", "v2", from("a", "v3"), true, false},
		{"made with nothing to merge, a last good now", nil, "b", "v2", nil, true, true},
		{"made with nothing to merge, still none", func(s *bootstate.State) { s.LastGood = bootstate.LastGood{} }, "b", "v2", nil, true, false},
		{"record unreadable", nil, "b", "v2", nil, false, true},
		{"the slot is good", func(s *bootstate.State) { s.Slots[1].Good = true }, "b", "v2", from("a", "v1"), true, false},
		{"the last good image itself, not good now", func(s *bootstate.State) {
			s.Slots[0].Good = false
		}, "a", "v3", nil, true, false},
		{"merged from the same id in the other slot", nil, "b", "v2", from("b", "v3"), true, true},
		{"state not read", func(s *bootstate.State) { s.Initialised = false }, "b", "v2", from("a", "v1"), true, false},
		{"not a slot", nil, "single", "v2", from("a", "v1"), true, false},
	} {
		s := st()
		if c.edit != nil {
			c.edit(&s)
		}
		if got := staleTrial(s, c.slot, c.imageID, c.rec, c.known); got != c.want {
			t.Errorf("%s: stale %v, want %v", c.name, got, c.want)
		}
	}
}

// TestReinstalledImageMergesAgain: slot b held v2 (good; its upper merged
// from a/v1), a/v3 became the last good image and /etc changed on it;
// then v2 was installed into b again (a re-push of the previous release).
// b's boot sets v2's old upper aside, so its upper is fresh and merged
// from a/v3; the later prune of a/v3 (the next update into a) no longer
// loses the changes. It used to boot the old upper unmerged.
func TestReinstalledImageMergesAgain(t *testing.T) {
	root := t.TempDir()
	for p, c := range map[string]string{
		"@overlay/b/v2/upper/etc/wireguard/wg0.conf": "old key",
		"@overlay/b/v2/etc-merge.json":               `{"from_slot":"a","from_image":"v1","carried":1,"deleted":0,"same":0,"ms":1}`,
		"@overlay/a/v3/upper/etc/wireguard/wg0.conf": "rotated key",
		"@var/" + datapart.SeedMarker:                "",
	} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, p), []byte(c), 0o644))
	}
	for _, d := range []string{"@home", "@overlay/b/v2/work", "@overlay/a/v3/work"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	s := bootstate.DefaultState()
	s.Initialised = true
	s.Slots[0] = bootstate.SlotState{Priority: 1, Good: true}
	s.LastGood = bootstate.LastGood{Slot: bootstate.SlotA, ImageID: "v3"}
	must(t, s.SetNext(bootstate.SlotB, bootstate.DefaultTries)) // slotctl install --slot b
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), baked: &bakedconf.Config{}, rep: &report.Report{Mode: "slot", Slot: "b", Data: &report.Data{}},
		bs: &bootState{store: bootstate.NewMemStore(bootstate.BootStateMinSize), state: s}, data: &dataState{root: root, fstype: datapart.Ext4}}
	if !b.setAsideStale("b", "v2") {
		t.Fatalf("set aside: %s", console.String())
	}
	res, err := datapart.Prepare(datapart.Plan{Root: root, FSType: datapart.Ext4, ImageVar: filepath.Join(root, "novar"), Slot: "b", ImageID: "v2", NoPrune: true})
	must(t, err)
	if !res.FreshUpper {
		t.Errorf("b/v2's upper is not fresh after the reinstall: no /etc merge from a/v3 would run")
	}
	if got, err := os.ReadFile(filepath.Join(root, "@overlay/b/.set-aside/v2/upper/etc/wireguard/wg0.conf")); err != nil || string(got) != "old key" {
		t.Errorf("the old upper set aside: %q, %v: want it kept there", got, err)
	}
	if !strings.Contains(console.String(), "set aside the upper") || fmt.Sprint(b.rep.Data.SetAside) != "["+filepath.Join(root, "@overlay/b/.set-aside/v2")+"]" {
		t.Errorf("console %q, report %v: want the set-aside said", console.String(), b.rep.Data.SetAside)
	}
	// The boot after the merge: the upper merged from a/v3 is kept.
	must(t, datapart.NewUpper{Dir: res.UpperDir, NoFlush: true}.Create())
	must(t, os.WriteFile(filepath.Join(res.UpperDir, datapart.EtcMergeFile), []byte(`{"from_slot":"a","from_image":"v3","carried":1,"deleted":0,"same":0,"ms":1}`), 0o644))
	if !b.setAsideStale("b", "v2") {
		t.Fatal("second boot")
	}
	if _, err := os.Stat(res.UpperDir); err != nil {
		t.Errorf("the trial's own merged upper, at its second boot: %v, want it kept", err)
	}
}

// TestReadMergeRecord: the record is read from a regular file only — a
// FIFO would hold PID 1 for ever, a symlink lead anywhere — and one that
// is not there is no record.
func TestReadMergeRecord(t *testing.T) {
	dir := t.TempDir()
	if m, err := readMergeRecord(dir); m != nil || err != nil {
		t.Errorf("none: %v, %v", m, err)
	}
	p := filepath.Join(dir, datapart.EtcMergeFile)
	must(t, os.WriteFile(p, []byte(`{"from_slot":"a","from_image":"v3","carried":1,"deleted":0,"same":0,"ms":1}`), 0o644))
	if m, err := readMergeRecord(dir); err != nil || m == nil || m.FromImage != "v3" {
		t.Errorf("a record: %+v, %v", m, err)
	}
	must(t, os.Remove(p))
	must(t, unix.Mkfifo(p, 0o644))
	if _, err := readMergeRecord(dir); err == nil {
		t.Error("a FIFO: no error")
	}
	must(t, os.Remove(p))
	must(t, os.Symlink("/etc/hostname", p))
	if _, err := readMergeRecord(dir); err == nil {
		t.Error("a symlink: no error")
	}
}
