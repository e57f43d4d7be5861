// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/devspec"
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
		garbage     bool // the bootstate partition's records are garbage (bootstate.ErrGarbage)
		noData      bool
		now         string // the image in the copy's last good slot: B1 when ""
		headerErr   error  // the header of the copy's last good slot cannot be read
		want        bootstate.State
		wantWarn    string
	}{
		// An update written into b after the copy, whose own write failed:
		// b is a trial, held back behind a, not the good slot it was.
		{name: "last good slot rewritten", unavailable: true, file: writeBytes(rec), now: "B2",
			want:     fromCopy(bootstate.State{RollbackFloor: 4, LastGood: copyState.LastGood, Slots: [2]bootstate.SlotState{{Priority: 2, Tries: 3}, {Priority: 1, Tries: 1}}}),
			wantWarn: `names image B1 in slot b as last marked good, but slot b now holds "B2", never confirmed: it is taken for a trial`},
		// Not a rewritten slot: its attempt fails on the header, named.
		{name: "last good slot's header unreadable", unavailable: true, file: writeBytes(rec), headerErr: errors.New("input/output error"),
			want: fromCopy(copyState), wantWarn: "boot counting starts from the copy of the boot state on the data partition"},
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
		// Garbage where the records were (a sector that gives back other
		// bytes) beside this machine's copy: the state was lost, and the
		// copy holds b, the last good slot, before the trial a.
		{name: "garbage records beside a copy", garbage: true, file: writeBytes(rec), want: fromCopy(copyState),
			wantWarn: "boot state was lost, not absent"},
		// The copy proves the machine kept a state, even when it is
		// unusable itself: lost, the defaults, the state unavailable.
		{name: "garbage records beside a torn copy", garbage: true, file: writeBytes(rec[:100]), want: bootstate.DefaultState(),
			wantWarn: "100 bytes, expected one record of 512: not used"},
		{name: "garbage records, no copy", garbage: true, want: bootstate.DefaultState()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, console := copyBoot(t, tc.noData, tc.file)
			bs := &bootState{state: bootstate.DefaultState(), unavailable: tc.unavailable, garbage: tc.garbage}
			imageIn := func(slot string) (string, error) {
				if slot != "b" {
					t.Errorf("read the image of slot %s: want only the copy's last good slot, b", slot)
				}
				if tc.headerErr != nil {
					return "", tc.headerErr
				}
				return cmp.Or(tc.now, "B1"), nil
			}
			b.stateFromCopy(bs, imageIn)
			b.stateFromCopy(bs, imageIn) // once per boot
			if bs.state != tc.want {
				t.Errorf("state %+v\nwant %+v", bs.state, tc.want)
			}
			w := strings.Join(b.rep.Warnings, "\n")
			lost := 0
			if tc.garbage && tc.file != nil {
				lost = 1 // the line that says the state was lost
			}
			if tc.wantWarn == "" && w != "" || !strings.Contains(w, tc.wantWarn) || strings.Count(w, "boot state") > 1+lost {
				t.Errorf("warnings %q, want one with %q", w, tc.wantWarn)
			}
			if wantUnavailable := tc.unavailable || lost == 1; bs.unavailable != wantUnavailable {
				t.Errorf("unavailable %v, want %v", bs.unavailable, wantUnavailable)
			}
			if tc.wantWarn != "" && !strings.Contains(console.String(), tc.wantWarn) {
				t.Errorf("console %q: want the warning", console.String())
			}
			b.bs = bs
			if slot, id, ok := b.lastGood(); bs.unavailable && ok {
				t.Errorf("lastGood = %q %q %v: the merge's source must not come from the copy", slot, id, ok)
			}
		})
	}
}

func TestDescribeCopy(t *testing.T) {
	s, held := bootstate.FromCopy(bootstate.State{LastGood: bootstate.LastGood{Slot: bootstate.SlotB, ImageID: "B1"},
		Slots: [2]bootstate.SlotState{{Priority: 2, Tries: 3}, {Priority: 1, Good: true}}})
	want := "slot a priority 1, not yet good, 3 tries left; slot b priority 2, good; last good b (B1); slot a, not yet good, is tried only if the good slot fails in this boot: its tries cannot be counted while the bootstate partition cannot be used"
	if got := describeCopy(s, held); got != want {
		t.Errorf("describeCopy = %q\nwant %q", got, want)
	}
}

// copyBoot is a boot whose data partition (none with noData) is a
// directory where file, when not nil, makes the copy of the boot state;
// console is what it writes to the console.
func copyBoot(t *testing.T, noData bool, file func(*testing.T, string)) (b *boot, console *bytes.Buffer) {
	console = &bytes.Buffer{}
	b = &boot{log: newLogger(console), rep: &report.Report{}}
	root := t.TempDir()
	if !noData {
		b.data = &dataState{root: root}
	}
	if file != nil {
		file(t, filepath.Join(root, bootstate.CopyName))
	}
	return b, console
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

// TestRestoreFromCopy: a bootstate partition that reads but holds no
// valid record (both records damaged, flashed blank) starts durable
// counting from the data partition's copy when the copy's last good image
// is still in its slot: that slot, the rollback floor and the last good
// image come back, and this boot's data mount count and the store's
// sequence stay. The defaults booted slot a, possibly the older image,
// whose mark-good stranded the configuration in the other slot's upper. A
// slot provisioned anew, a copy naming no last good image, no copy, or a
// partition that held records, keep what they had.
func TestRestoreFromCopy(t *testing.T) {
	copyState := bootstate.State{Seq: 41, RollbackFloor: 7, DataSeen: true, UnfinishedDataMounts: 1,
		LastGood: bootstate.LastGood{Slot: bootstate.SlotB, ImageID: "B1"},
		Slots:    [2]bootstate.SlotState{{Priority: 1, Good: true}, {Priority: 2, Good: true, Unconfirmed: 1}}, Initialised: true}
	rec := bootstate.MarshalRecord(copyState)
	blank := bootstate.DefaultState()
	blank.Seq, blank.UnfinishedDataMounts, blank.Initialised = 1, 1, true // after beginDataMount's write
	restored, _ := bootstate.Restore(copyState, blank)
	noLastGood := copyState
	noLastGood.LastGood = bootstate.LastGood{}
	valid := blank
	valid.Seq = 30
	for _, tc := range []struct {
		name     string
		file     []byte // the copy (nil: none)
		bs       bootState
		noData   bool
		inSlot   string // the image in slot b's header
		want     bootstate.State
		wantWarn string
	}{
		{name: "restored", file: rec, bs: bootState{state: blank, blank: true}, inSlot: "B1", want: restored,
			wantWarn: "boot counting starts again from the copy of the boot state on the data partition"},
		{name: "slot provisioned anew", file: rec, bs: bootState{state: blank, blank: true}, inSlot: "B7", want: blank,
			wantWarn: `but slot b now holds "B7": the copy does not describe this disk's slots, counting from the defaults`},
		{name: "header unreadable", file: rec, bs: bootState{state: blank, blank: true}, want: blank, wantWarn: `slot b now holds ""`},
		{name: "no last good in the copy", file: bootstate.MarshalRecord(noLastGood), bs: bootState{state: blank, blank: true}, inSlot: "B1", want: blank},
		{name: "no copy", bs: bootState{state: blank, blank: true}, inSlot: "B1", want: blank},
		{name: "torn copy", file: rec[:100], bs: bootState{state: blank, blank: true}, inSlot: "B1", want: blank, wantWarn: "not used, counting from the defaults"},
		{name: "records were valid", file: rec, bs: bootState{state: valid}, inSlot: "B1", want: valid},
		{name: "counted in memory", file: rec, bs: bootState{state: blank, blank: true, inMemory: true}, inSlot: "B1", want: blank},
		{name: "no data partition", file: rec, bs: bootState{state: blank, blank: true}, noData: true, inSlot: "B1", want: blank},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var file func(*testing.T, string)
			if tc.file != nil {
				file = writeBytes(tc.file)
			}
			b, _ := copyBoot(t, tc.noData, file)
			bs := tc.bs
			asked := 0
			imageIn := func(slot string) string {
				asked++
				if slot != "b" {
					t.Errorf("asked for slot %s's image, want b's", slot)
				}
				return tc.inSlot
			}
			b.restoreFromCopy(&bs, imageIn)
			b.restoreFromCopy(&bs, imageIn) // once per boot
			if bs.state != tc.want {
				t.Errorf("state %+v\nwant %+v", bs.state, tc.want)
			}
			if asked > 1 {
				t.Errorf("slot b's header read %d times, want at most once", asked)
			}
			w := strings.Join(b.rep.Warnings, "\n")
			if (tc.wantWarn == "") != (w == "") || !strings.Contains(w, tc.wantWarn) || strings.Count(w, "bootstate partition") > 1 {
				t.Errorf("warnings %q, want one with %q", w, tc.wantWarn)
			}
			b.bs = &bs
			if _, id, ok := b.lastGood(); ok != (tc.want.LastGood.Slot != "") || id != tc.want.LastGood.ImageID {
				t.Errorf("lastGood = %q %v, want %q", id, ok, tc.want.LastGood.ImageID)
			}
		})
	}
}

// FuzzRestoreFromCopy: whatever bytes the data partition's copy holds and
// whatever image the slot's header names, a blank boot state is replaced
// only by a copy that parses and whose last good image is the one in its
// slot, keeping this boot's sequence and data mount count; else it stays.
func FuzzRestoreFromCopy(f *testing.F) {
	good := bootstate.State{Seq: 5, RollbackFloor: 3, LastGood: bootstate.LastGood{Slot: bootstate.SlotA, ImageID: "A1"},
		Slots: [2]bootstate.SlotState{{Priority: 2, Good: true}, {Priority: 1, Tries: 3}}, Initialised: true}
	f.Add(bootstate.MarshalRecord(good), "A1")
	f.Add(bootstate.MarshalRecord(good), "A2")
	f.Add([]byte("garbage"), "")
	root := f.TempDir() // one per process: t.TempDir per input slows fuzzing a thousandfold
	f.Fuzz(func(t *testing.T, data []byte, inSlot string) {
		data = sealedCopy(data)
		writeBytes(data)(t, filepath.Join(root, bootstate.CopyName))
		b := &boot{log: newLogger(io.Discard), rep: &report.Report{}, data: &dataState{root: root}}
		blank := bootstate.DefaultState()
		blank.Seq, blank.UnfinishedDataMounts, blank.Initialised = 2, 1, true
		bs := &bootState{state: blank, blank: true}
		b.restoreFromCopy(bs, func(string) string { return inSlot })
		c, err := bootstate.ReadCopy(bytes.NewReader(data))
		want := blank
		if err == nil && c.LastGood.Slot != "" && c.LastGood.ImageID == inSlot {
			want, _ = bootstate.Restore(c, blank)
		}
		if bs.state != want {
			t.Fatalf("state %+v\nwant %+v", bs.state, want)
		}
	})
}

// sealedCopy is a fuzz input with the checksum of a boot state record
// recomputed when it is one record long: a hostile copy carries a valid
// one, and without it the fuzzer's mutations all stop at the checksum. The
// checksum is the record's last 32 bytes, the sha256 of those before
// (docs/formats.md, "Boot state"). Any other length keeps its bytes.
func sealedCopy(b []byte) []byte {
	if len(b) != bootstate.RecordSize {
		return b
	}
	b = bytes.Clone(b)
	sum := sha256.Sum256(b[:len(b)-sha256.Size])
	copy(b[len(b)-sha256.Size:], sum[:])
	return b
}

// TestBlankAfterACountedDataMount: a boot on a blank bootstate partition
// writes the count of its data mount first; if it goes no further (a power
// cut, a hang), the next boot still finds nothing a boot learned, and may
// restore from the copy. Once a boot counted a slot, it may not.
func TestBlankAfterACountedDataMount(t *testing.T) {
	store := bootstate.NewMemStore(bootstate.BootStateMinSize)
	st := bootstate.DefaultState()
	st.BeginDataMount()
	if err := bootstate.Save(store, &st); err != nil {
		t.Fatal(err)
	}
	read := func() *bootState {
		b := &boot{log: newLogger(io.Discard), rep: &report.Report{}}
		b.bs = &bootState{store: store, close: func() {}}
		b.readBootState()
		return b.bs
	}
	if bs := read(); !bs.blank || bs.state.UnfinishedDataMounts != 1 {
		t.Errorf("after a counted data mount only: blank %v, state %+v: want blank, the count kept", bs.blank, bs.state)
	}
	st.Slots[0].Tries--
	if err := bootstate.Save(store, &st); err != nil {
		t.Fatal(err)
	}
	if bs := read(); bs.blank {
		t.Errorf("after a slot's try was counted: blank, want not")
	}
}

// TestLockedAmbiguousBootStateRefused: a locked boot whose baked
// bootstate= matches two devices (a stick carrying a copy of its PARTUUID)
// boots no slot, naming both; it used to count in memory from the
// defaults, rollback floor 0, and boot the older signed image (found by a
// hunting helper). Unlocked, or for another reason, the count is in memory
// as before, and locked the line is on the console whatever the log level.
func TestLockedAmbiguousBootStateRefused(t *testing.T) {
	s, err := devspec.Parse("PARTUUID=11111111-2222-3333-4444-555555555555")
	if err != nil {
		t.Fatal(err)
	}
	amb := fmt.Errorf("wrapped: %w", ambiguous("bootstate", s, []string{"/dev/nvme0n1p5", "/dev/sda5"}))
	for _, c := range []struct {
		name    string
		locked  bool
		why     error
		refused bool
	}{
		{"locked, two devices", true, amb, true},
		{"locked, late", true, errors.New("bootstate device: timed out"), false},
		{"unlocked, two devices", false, amb, false},
	} {
		var console bytes.Buffer
		b := &boot{log: newLogger(&console), baked: &bakedconf.Config{Locked: c.locked}, rep: &report.Report{}}
		bs := b.memBootState(c.why)
		if (bs.refused != nil) != c.refused || c.refused && !strings.Contains(bs.refused.Error(), "2 devices match (/dev/nvme0n1p5, /dev/sda5)") {
			t.Errorf("%s: refused %v, want %v", c.name, bs.refused, c.refused)
		}
		if !c.refused && bs.state != bootstate.DefaultState() {
			t.Errorf("%s: state %+v, want the defaults counted in memory", c.name, bs.state)
		}
		if c.locked && !c.refused && !strings.Contains(console.String(), "boot counting is not durable") {
			t.Errorf("%s: console %q: want the line there", c.name, console.String())
		}
	}
}

// TestMemBootStateGarbage: a bootstate partition refused for garbage
// records (CheckWritable: bootstate.ErrGarbage) is marked so for
// stateFromCopy; one refused for a file system or another signature, or
// for an I/O error, is not (another tool's partition, or unreadable).
func TestMemBootStateGarbage(t *testing.T) {
	junk := bootstate.NewMemStore(bootstate.BootStateMinSize)
	for i := range junk.Bytes() {
		junk.Bytes()[i] = byte(0x5a ^ i)
	}
	garbage := bootstate.CheckWritable(junk)
	for _, c := range []struct {
		name             string
		why              error
		want, unreadable bool
	}{
		{"garbage records", fmt.Errorf("bootstate device /dev/vda5: %w", garbage), true, false},
		{"a file system", fmt.Errorf("bootstate device /dev/vda5: %w: the device holds ext4", bootstate.ErrForeign), false, false},
		{"unreadable", fmt.Errorf("bootstate device /dev/vda5: %w", io.ErrUnexpectedEOF), false, true},
	} {
		b, _ := copyBoot(t, false, nil)
		b.baked = &bakedconf.Config{}
		// Garbage is unavailable only once stateFromCopy finds a copy.
		if bs := b.memBootState(c.why); bs.garbage != c.want || bs.unavailable != c.unreadable {
			t.Errorf("%s (%v): garbage %v, unavailable %v; want %v, %v", c.name, c.why, bs.garbage, bs.unavailable, c.want, c.unreadable)
		}
	}
}
