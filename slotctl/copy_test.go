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

// TestDataPartitionCopy: on the running system, every command that saves
// the boot state leaves the data partition's copy equal to the state as
// saved (the init counts from it when the bootstate partition cannot be
// read); a command that changes nothing writes nothing; a boot without a
// mounted data partition, --disk and --bootstate keep no copy; a copy that
// cannot be written is a warning, the state saved all the same, and the
// next change writes it; a power cut's temporary files are removed.
func TestDataPartitionCopy(t *testing.T) {
	running := func(t *testing.T, data *report.Data) (*target, *bytes.Buffer, string) {
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
		var warn bytes.Buffer
		tg := &target{root: root, reportPath: rep, warn: &warn, mounted: func(dir string) bool { return dir == dataRoot }}
		return tg, &warn, filepath.Join(dataRoot, bootstate.CopyName)
	}
	setNext := func(x bootstate.Slot) func(s *bootstate.State) error {
		return func(s *bootstate.State) error { return s.SetNext(x, 3, "") }
	}
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
		tg, warn, cp := running(t, &report.Data{Device: "/dev/vda6", FSType: "btrfs"})
		leftover := filepath.Join(filepath.Dir(cp), "."+bootstate.CopyName+".tmp-123")
		if err := os.WriteFile(leftover, []byte("cut"), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := tg.withState(setNext(bootstate.SlotB))
		if err != nil || warn.Len() > 0 {
			t.Fatal(err, warn)
		}
		wantCopy(t, cp, s)
		if fi, err := os.Stat(cp); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("copy %v %v: want a 0644 file", fi, err)
		}
		if _, err := os.Stat(leftover); !os.IsNotExist(err) {
			t.Errorf("leftover temporary file: %v, want it removed", err)
		}
		// A command that changes nothing (the install's checks, mark-good
		// of a good slot) writes nothing.
		if err := os.WriteFile(cp, []byte("stale"), 0o644); err != nil {
			t.Fatal(err)
		}
		if s2, err := tg.withState(setNext(bootstate.SlotB)); err != nil || s2.Seq != s.Seq {
			t.Fatalf("second set-next: %+v %v, want no new record", s2, err)
		}
		if b, _ := os.ReadFile(cp); string(b) != "stale" {
			t.Error("an unchanged state rewrote the copy")
		}
		s, err = tg.withState(setNext(bootstate.SlotA))
		if err != nil {
			t.Fatal(err)
		}
		wantCopy(t, cp, s)
	})
	t.Run("not written", func(t *testing.T) {
		for name, data := range map[string]*report.Data{"no data partition": nil, "volatile": {Device: "/dev/vda6", Volatile: true}} {
			tg, warn, cp := running(t, data)
			if _, err := tg.withState(setNext(bootstate.SlotB)); err != nil || warn.Len() > 0 {
				t.Fatal(err, warn)
			}
			if _, err := os.Stat(cp); !os.IsNotExist(err) {
				t.Errorf("%s: copy %v, want none", name, err)
			}
		}
		tg, _, cp := running(t, &report.Data{Device: "/dev/vda6"})
		r, err := report.Read(tg.reportPath)
		if err != nil {
			t.Fatal(err)
		}
		tg.bootstate = r.Devices["bootstate"]
		if _, err := tg.withState(setNext(bootstate.SlotB)); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(cp); !os.IsNotExist(err) {
			t.Errorf("--bootstate: copy %v, want none", err)
		}
	})
	t.Run("cannot be written", func(t *testing.T) {
		for name, setup := range map[string]func(tg *target, cp string) string{
			"a directory in its place": func(_ *target, cp string) string {
				if err := os.Mkdir(cp, 0o755); err != nil {
					t.Fatal(err)
				}
				return "a directory, expected a regular file: remove it"
			},
			"the data partition no longer mounted": func(tg *target, _ string) string {
				tg.mounted = func(string) bool { return false }
				return "is not mounted (the boot report says the data partition /dev/vda6 was)"
			},
		} {
			tg, warn, cp := running(t, &report.Data{Device: "/dev/vda6"})
			want := setup(tg, cp)
			s, err := tg.withState(setNext(bootstate.SlotB))
			if err != nil {
				t.Fatalf("%s: %v, want the command to succeed", name, err)
			}
			if w := warn.String(); !strings.Contains(w, "slotctl: warning: the boot state is saved, but not its copy on the data partition") || !strings.Contains(w, want) {
				t.Errorf("%s: warning %q, want %q", name, w, want)
			}
			if got, lerr := tg.loadState(); lerr != nil || got != s || !got.Slot(bootstate.SlotB).Bootable() {
				t.Errorf("%s: state %+v %v: want it saved all the same", name, got, lerr)
			}
		}
	})
}
