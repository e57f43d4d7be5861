// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
)

// TestStateFromCopy: a boot whose bootstate partition cannot be read
// starts boot counting from the data partition's copy; a missing copy
// leaves the defaults quietly, an unusable one loudly; a partition that is
// merely absent, or no data partition, never reads the copy.
func TestStateFromCopy(t *testing.T) {
	copyState := bootstate.State{Seq: 9, RollbackFloor: 4, LastGood: bootstate.LastGood{Slot: bootstate.SlotB, ImageID: "B1"},
		Slots: [2]bootstate.SlotState{{Priority: 2, Tries: 3}, {Priority: 1, Good: true}}}
	rec := bootstate.MarshalRecord(copyState)
	for _, tc := range []struct {
		name        string
		file        func(t *testing.T, p string)
		unavailable bool
		noData      bool
		want        bootstate.State
		wantWarn    string
	}{
		{name: "copy used", unavailable: true, file: writeBytes(rec), want: fromCopy(copyState),
			wantWarn: "boot counting starts from the copy of the boot state on the data partition"},
		{name: "no copy", unavailable: true, want: bootstate.DefaultState()},
		{name: "torn copy", unavailable: true, file: writeBytes(rec[:100]), want: bootstate.DefaultState(),
			wantWarn: "100 bytes, expected one record of 512: not used"},
		{name: "symlink", unavailable: true, want: bootstate.DefaultState(), wantWarn: "not used", file: func(t *testing.T, p string) {
			target := filepath.Join(t.TempDir(), "rec")
			if err := os.WriteFile(target, rec, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a directory", unavailable: true, want: bootstate.DefaultState(), wantWarn: "not a regular file", file: func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "partition absent, not unavailable", file: writeBytes(rec), want: bootstate.DefaultState()},
		{name: "no data partition", unavailable: true, noData: true, file: writeBytes(rec), want: bootstate.DefaultState()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var console bytes.Buffer
			b := &boot{log: newLogger(&console), rep: &report.Report{}}
			root := t.TempDir()
			if !tc.noData {
				b.data = &dataState{root: root}
			}
			if tc.file != nil {
				tc.file(t, filepath.Join(root, bootstate.CopyName))
			}
			bs := &bootState{state: bootstate.DefaultState(), unavailable: tc.unavailable}
			b.stateFromCopy(bs)
			b.stateFromCopy(bs) // once per boot
			if bs.state != tc.want {
				t.Errorf("state %+v\nwant %+v", bs.state, tc.want)
			}
			w := strings.Join(b.rep.Warnings, "\n")
			if tc.wantWarn == "" && w != "" || !strings.Contains(w, tc.wantWarn) || strings.Count(w, "boot state") > 1 {
				t.Errorf("warnings %q, want one with %q", w, tc.wantWarn)
			}
			if tc.wantWarn != "" && !strings.Contains(console.String(), tc.wantWarn) {
				t.Errorf("console %q: want the warning", console.String())
			}
			b.bs = bs
			if slot, id, ok := b.lastGood(); tc.unavailable && ok {
				t.Errorf("lastGood = %q %q %v: the merge's source must not come from the copy", slot, id, ok)
			}
		})
	}
}

func TestDescribeCopy(t *testing.T) {
	s, held := bootstate.FromCopy(bootstate.State{LastGood: bootstate.LastGood{Slot: bootstate.SlotB, ImageID: "B1"},
		Slots: [2]bootstate.SlotState{{Priority: 2, Tries: 3}, {Priority: 1, Good: true}}})
	want := "slot a priority 1, not yet good, 3 tries left; slot b priority 2, good; last good b (B1); slot a, not yet good, is tried only if the good slot fails in this boot: its tries cannot be counted while the bootstate partition cannot be read"
	if got := describeCopy(s, held); got != want {
		t.Errorf("describeCopy = %q\nwant %q", got, want)
	}
}

func fromCopy(c bootstate.State) bootstate.State {
	s, _ := bootstate.FromCopy(c)
	return s
}

func writeBytes(b []byte) func(t *testing.T, p string) {
	return func(t *testing.T, p string) {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
