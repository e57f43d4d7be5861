// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/report"
)

// TestDataPartitionCopy: on the running system, every command that reads
// the boot state for writing leaves the data partition's copy equal to the
// state as saved (the init counts from it when the bootstate partition
// cannot be read); a boot without a mounted data partition, --disk and
// --bootstate keep no copy; a copy that cannot be written fails the
// command after the state itself is saved, and the next command writes it.
func TestDataPartitionCopy(t *testing.T) {
	running := func(t *testing.T, data *report.Data) (*target, string, string) {
		t.Helper()
		root := t.TempDir()
		dataRoot := filepath.Join(root, datapart.DefaultRoot)
		if err := os.MkdirAll(dataRoot, 0o755); err != nil {
			t.Fatal(err)
		}
		state := filepath.Join(t.TempDir(), "bootstate")
		if err := os.WriteFile(state, make([]byte, bootstate.BootStateMinSize), 0o600); err != nil {
			t.Fatal(err)
		}
		rep := writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "a", Data: data, Devices: map[string]string{"bootstate": state}})
		return &target{root: root, reportPath: rep}, filepath.Join(dataRoot, bootstate.CopyName), state
	}
	setNextB := func(s *bootstate.State) error { return s.SetNext(bootstate.SlotB, 3) }
	wantCopy := func(t *testing.T, p string, s bootstate.State) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := bootstate.ReadCopy(bytes.NewReader(b))
		if err != nil || got != s {
			t.Errorf("copy %+v, %v\nwant %+v", got, err, s)
		}
	}

	t.Run("kept", func(t *testing.T) {
		tg, cp, _ := running(t, &report.Data{Device: "/dev/vda6", FSType: "btrfs"})
		s, err := tg.withState(setNextB)
		if err != nil {
			t.Fatal(err)
		}
		wantCopy(t, cp, s)
		if fi, err := os.Stat(cp); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("copy %v %v: want a 0644 file", fi, err)
		}
		// Unchanged state, stale copy: written again.
		if err := os.WriteFile(cp, []byte("stale"), 0o644); err != nil {
			t.Fatal(err)
		}
		if s2, err := tg.withState(setNextB); err != nil || s2.Seq != s.Seq {
			t.Fatalf("second set-next: %+v %v, want no new record", s2, err)
		}
		wantCopy(t, cp, s)
	})
	t.Run("not written", func(t *testing.T) {
		for name, data := range map[string]*report.Data{"no data partition": nil, "volatile": {Device: "/dev/vda6", Volatile: true}} {
			tg, cp, _ := running(t, data)
			if _, err := tg.withState(setNextB); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(cp); !os.IsNotExist(err) {
				t.Errorf("%s: copy %v, want none", name, err)
			}
		}
		tg, cp, state := running(t, &report.Data{Device: "/dev/vda6"})
		tg.bootstate = state
		if _, err := tg.withState(setNextB); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(cp); !os.IsNotExist(err) {
			t.Errorf("--bootstate: copy %v, want none", err)
		}
	})
	t.Run("write fails", func(t *testing.T) {
		tg, cp, _ := running(t, &report.Data{Device: "/dev/vda6"})
		if err := os.Mkdir(cp, 0o755); err != nil { // not a file: cannot be replaced
			t.Fatal(err)
		}
		s, err := tg.withState(setNextB)
		if err == nil || !strings.Contains(err.Error(), "the boot state is saved, but not its copy on the data partition") {
			t.Fatalf("err = %v, want the copy named", err)
		}
		if got, lerr := tg.loadState(); lerr != nil || got != s || !got.Slot(bootstate.SlotB).Bootable() {
			t.Errorf("state %+v %v: want it saved all the same", got, lerr)
		}
		if err := os.Remove(cp); err != nil {
			t.Fatal(err)
		}
		if _, err := tg.withState(setNextB); err != nil {
			t.Fatal(err)
		}
		wantCopy(t, cp, s)
	})
}
