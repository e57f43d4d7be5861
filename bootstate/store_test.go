// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadBlank(t *testing.T) {
	for name, st := range map[string]Store{
		"zeros":   NewMemStore(BootStateMinSize),
		"garbage": garbageStore(),
		"empty":   NewMemStore(0),
	} {
		s, warnings, err := Load(st)
		if err != nil || s != DefaultState() || s.Initialised {
			t.Errorf("%s: Load = %+v, %v; want the defaults", name, s, err)
		}
		if name == "zeros" {
			// A partition never written is the normal first boot.
			if len(warnings) != 0 {
				t.Errorf("%s: warnings %q, want none", name, warnings)
			}
			continue
		}
		if len(warnings) != 3 || !strings.Contains(warnings[2], "using the defaults (a: priority 2, not yet good, 3 tries left; b: priority 1") {
			t.Errorf("%s: warnings %q", name, warnings)
		}
	}
}

func TestLoadOneBlankCopyIsQuiet(t *testing.T) {
	m := NewMemStore(BootStateMinSize)
	s := DefaultState()
	if err := Save(m, &s); err != nil {
		t.Fatal(err)
	}
	if _, warnings, err := Load(m); err != nil || len(warnings) != 0 {
		t.Errorf("one record, one never-written copy: warnings %q, %v; want none", warnings, err)
	}
	other := m.b[copyOffset(1) : copyOffset(1)+RecordSize]
	for i := range other {
		other[i] = 0xff // an erased flash block
	}
	if got, warnings, _ := Load(m); len(warnings) != 0 || got.Seq != 1 {
		t.Errorf("erased other copy: state seq %d, warnings %q; want the saved record, no warnings", got.Seq, warnings)
	}
}

func garbageStore() *MemStore {
	m := NewMemStore(BootStateMinSize)
	for i := range m.b {
		m.b[i] = byte(i * 31)
	}
	return m
}

// TestSaveAlternates checks the write pattern: the older copy is always the
// one written, and the newest valid record wins.
func TestSaveAlternates(t *testing.T) {
	m := NewMemStore(BootStateMinSize)
	s := DefaultState()
	for i := 1; i <= 4; i++ {
		s.Slots[0].Tries = uint8(i)
		if err := Save(m, &s); err != nil {
			t.Fatal(err)
		}
		if s.Seq != uint64(i) || !s.Initialised {
			t.Fatalf("after save %d: %+v", i, s)
		}
		c := readCopies(m)
		wrote, kept := (i+1)%2, i%2 // copy 0 first: it holds nothing valid
		if c[wrote].err != nil || c[wrote].state.Seq != uint64(i) {
			t.Errorf("save %d: copy %d = %+v, %v; want sequence %d", i, wrote, c[wrote].state, c[wrote].err, i)
		}
		if i > 1 && c[kept].state.Seq != uint64(i-1) {
			t.Errorf("save %d: copy %d has sequence %d, want %d", i, kept, c[kept].state.Seq, i-1)
		}
		if got := mustLoad(t, m); got != s {
			t.Errorf("save %d: Load = %+v, want %+v", i, got, s)
		}
	}
}

func TestLoadPicksNewestValid(t *testing.T) {
	older, newer := sampleState(), sampleState()
	newer.Seq, newer.Slots[0].Tries = 8, 1
	tests := []struct {
		name       string
		c0, c1     []byte
		want       State
		nWarnings  int
		wantInWarn string
	}{
		{"newer in copy 1", MarshalRecord(older), MarshalRecord(newer), newer, 0, ""},
		{"newer in copy 0", MarshalRecord(newer), MarshalRecord(older), newer, 0, ""},
		{"newer torn", MarshalRecord(older), torn(MarshalRecord(newer)), older, 1, "copy 1 at byte 65536: boot state record: checksum mismatch"},
		{"older torn", torn(MarshalRecord(older)), MarshalRecord(newer), newer, 1, "copy 0 at byte 0"},
	}
	for _, tt := range tests {
		m := NewMemStore(BootStateMinSize)
		copy(m.b[copy0Offset:], tt.c0)
		copy(m.b[copy1Offset:], tt.c1)
		got, warnings, err := Load(m)
		if err != nil || got != tt.want || len(warnings) != tt.nWarnings {
			t.Errorf("%s: Load = %+v, %q, %v; want %+v", tt.name, got, warnings, err, tt.want)
		}
		if tt.wantInWarn != "" && (len(warnings) == 0 || !strings.Contains(warnings[0], tt.wantInWarn)) {
			t.Errorf("%s: warnings %q, want %q", tt.name, warnings, tt.wantInWarn)
		}
	}
}

func torn(b []byte) []byte { clear(b[RecordSize/2:]); return b }

func TestSaveRefusesStaleState(t *testing.T) {
	m := NewMemStore(BootStateMinSize)
	first, second := DefaultState(), DefaultState()
	if err := Save(m, &first); err != nil {
		t.Fatal(err)
	}
	err := Save(m, &second)
	if err == nil || !strings.Contains(err.Error(), "stored sequence 1, expected 0") {
		t.Errorf("Save of a state read before another write: %v", err)
	}
	if second.Seq != 0 || second.Initialised {
		t.Errorf("failed Save changed the state: %+v", second)
	}
	max := State{Seq: 1<<64 - 1, Initialised: true}
	copy(m.b[copy0Offset:], MarshalRecord(max))
	if err := Save(m, &max); err == nil || !strings.Contains(err.Error(), "cannot grow") {
		t.Errorf("Save at the largest sequence: %v", err)
	}
}

// ioErrStore fails every read with an I/O error.
type ioErrStore struct{ *MemStore }

func (ioErrStore) ReadAt([]byte, int64) (int, error) { return 0, errors.New("input/output error") }

func TestLoadErrors(t *testing.T) {
	s, warnings, err := Load(ioErrStore{NewMemStore(BootStateMinSize)})
	if err == nil || !strings.Contains(err.Error(), "boot state unreadable") || s != DefaultState() || len(warnings) != 3 {
		t.Errorf("Load of an unreadable store = %+v, %q, %v", s, warnings, err)
	}
	small := NewMemStore(copy1Offset + 100)
	st := DefaultState()
	if err := Save(small, &st); err != nil { // copy 0 fits
		t.Fatal(err)
	}
	err = Save(small, &st)
	if err == nil || !strings.Contains(err.Error(), "write boot state copy 1 at byte 65536") {
		t.Errorf("Save past the end of a small store: %v", err)
	}
	if got := mustLoad(t, small); got.Seq != 1 {
		t.Errorf("after a failed save: %+v, want sequence 1", got)
	}
}

// TestFileStore: an *os.File is a Store, and a fresh file grows to hold
// both copies.
func TestFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bootstate")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := mustLoad(t, f)
	_ = s.MarkGood(SlotA, "img", 0)
	for range 2 {
		if err := Save(f, &s); err != nil {
			t.Fatal(err)
		}
	}
	if fi, _ := f.Stat(); fi.Size() != copy1Offset+RecordSize {
		t.Errorf("file is %d bytes", fi.Size())
	}
	if got := mustLoad(t, f); got != s {
		t.Errorf("Load = %+v, want %+v", got, s)
	}
}

// FuzzLoad: arbitrary bytes in both copies never panic, yield a valid state
// or the defaults, and the result can always be saved and read back —
// unless the bytes are foreign or a lost state (CheckWritable refuses
// them), and then Save refuses too and writes nothing.
func FuzzLoad(f *testing.F) {
	f.Add(MarshalRecord(sampleState()), MarshalRecord(DefaultState()))
	f.Add([]byte{}, MarshalRecord(sampleState()))
	f.Add(torn(MarshalRecord(sampleState())), []byte("KEELBOOT\x01"))
	f.Fuzz(func(t *testing.T, c0, c1 []byte) {
		m := NewMemStore(BootStateMinSize)
		copy(m.b[copy0Offset:copy1Offset], sealed(c0))
		copy(m.b[copy1Offset:], sealed(c1))
		s, _, err := Load(m)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if !s.Initialised && s != DefaultState() {
			t.Fatalf("not initialised but not the defaults: %+v", s)
		}
		if s.Seq == 1<<64-1 {
			return
		}
		before := string(m.b)
		if err := Save(m, &s); err != nil {
			if (errors.Is(err, ErrForeign) || errors.Is(err, ErrLost)) && CheckWritable(m) != nil && string(m.b) == before {
				return
			}
			t.Fatalf("Save after Load: %v", err)
		}
		if got := mustLoad(t, m); got != s {
			t.Fatalf("saved %+v, read back %+v", s, got)
		}
	})
}

// TestSaveBothSurvivesOneBadCopy: a state saved with SaveBoth is read back
// whichever copy goes bad afterwards; with Save alone, a bad newest copy
// gives the state before it (a confirmed slot back on its last try).
func TestSaveBothSurvivesOneBadCopy(t *testing.T) {
	before := DefaultState()
	before.Slots[1] = SlotState{Priority: 2, Tries: 0}
	for _, both := range []bool{true, false} {
		for bad := range 2 {
			m := NewMemStore(BootStateMinSize)
			s := before
			if err := Save(m, &s); err != nil {
				t.Fatal(err)
			}
			if err := s.MarkGood(SlotB, "img-b", 3); err != nil {
				t.Fatal(err)
			}
			save := Save
			if both {
				save = SaveBoth
			}
			if err := save(m, &s); err != nil {
				t.Fatal(err)
			}
			if _, err := m.WriteAt([]byte("rot"), copyOffset(bad)+40); err != nil {
				t.Fatal(err)
			}
			got := mustLoad(t, m)
			kept := got.Slot(SlotB).Good && got.LastGood.ImageID == "img-b" && got.RollbackFloor == 3
			// Save alone wrote the confirmation into copy 1 (copy 0 held
			// the first record): it is lost when copy 1 rots.
			want := both || bad != 1
			if kept != want {
				t.Errorf("SaveBoth=%v, copy %d bad: loaded %+v, confirmation kept %v, want %v", both, bad, got, kept, want)
			}
		}
	}
}

// TestCheckWritableTooSmall: a device that ends before the second record
// copy is refused, blank or holding a valid first record: the first write
// would go in and every later one fail, a machine whose second boot cannot
// count. One just large enough is taken.
func TestCheckWritableTooSmall(t *testing.T) {
	small := NewMemStore(64 << 10)
	if err := CheckWritable(small); err == nil || !strings.Contains(err.Error(), "too small for both copies") {
		t.Errorf("blank 64 KiB store: %v, want it refused as too small", err)
	}
	s := DefaultState()
	copy(small.Bytes(), MarshalRecord(s)) // a first record, as the old init wrote
	if err := CheckWritable(small); err == nil || !strings.Contains(err.Error(), "too small for both copies") {
		t.Errorf("64 KiB store with a record: %v, want it refused as too small", err)
	}
	if err := CheckWritable(NewMemStore(int(copyOffset(1) + RecordSize))); err != nil {
		t.Errorf("a store just large enough: %v", err)
	}
	if err := CheckSize(copyOffset(1) + RecordSize - 1); err == nil {
		t.Error("CheckSize took a size one byte short")
	}
	if err := CheckSize(BootStateMinSize); err != nil {
		t.Errorf("CheckSize(%d): %v", BootStateMinSize, err)
	}
}
