// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
)

// TestCheckWritable: keel writes boot state only where its own records or
// blank bytes are; a mistyped bootstate= at a file system, a LUKS volume,
// a whole disk or random bytes is refused, naming what was found.
func TestCheckWritable(t *testing.T) {
	valid := NewMemStore(BootStateMinSize)
	s := DefaultState()
	if err := Save(valid, &s); err != nil {
		t.Fatal(err)
	}
	tornFront := NewMemStore(BootStateMinSize)
	copy(tornFront.Bytes(), MarshalRecord(s)[:100])
	tornBack := NewMemStore(BootStateMinSize)
	copy(tornBack.Bytes()[3:], MarshalRecord(s)[3:])
	ones := NewMemStore(BootStateMinSize)
	for i := range ones.Bytes() {
		ones.Bytes()[i] = 0xff
	}
	random := NewMemStore(BootStateMinSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random.Bytes() {
		random.Bytes()[i] = byte(r.Uint32())
	}
	btrfs := NewMemStore(BootStateMinSize)
	copy(btrfs.Bytes()[65536+64:], "_BHRfS_M")
	luks := NewMemStore(BootStateMinSize)
	copy(luks.Bytes(), "LUKS\xba\xbe\x00\x02")
	gpt := NewMemStore(BootStateMinSize)
	copy(gpt.Bytes()[512:], "EFI PART")
	mbr := NewMemStore(BootStateMinSize)
	mbr.Bytes()[510], mbr.Bytes()[511] = 0x55, 0xaa
	at := func(off int, magic string) *MemStore {
		m := NewMemStore(BootStateMinSize)
		copy(m.Bytes()[off:], magic)
		return m
	}

	tests := []struct {
		name    string
		st      *MemStore
		wantErr string
	}{
		{"blank", NewMemStore(BootStateMinSize), ""},
		{"erased flash", ones, ""},
		{"valid records", valid, ""},
		{"first write cut from the front", tornFront, ""},
		{"first write cut from the back", tornBack, ""},
		{"random bytes", random, "copy 0 at byte 0 is neither blank (zeros) nor a keel record"},
		{"btrfs", btrfs, "the device holds btrfs"},
		{"LUKS", luks, "the device holds crypto_LUKS"},
		{"GPT disk", gpt, "GPT partition table"},
		{"MBR boot sector", mbr, "copy 0 at byte 0 is neither blank"},
		{"LVM2", at(512, "LABELONE"), "an LVM2 physical volume"},
		{"EROFS", at(1024, "\xe2\xe1\xf5\xe0"), "an EROFS image"},
		{"F2FS", at(1024, "\x10\x20\xf5\xf2"), "an F2FS file system"},
		{"md RAID", at(4096, "\xfc\x4e\x2b\xa9"), "an md RAID member"},
		{"swap", at(4086, "SWAPSPACE2"), "swap space"},
		{"ISO 9660", at(32769, "CD001"), "an ISO 9660 image"},
	}
	for _, tt := range tests {
		before := append([]byte(nil), tt.st.Bytes()...)
		err := CheckWritable(tt.st)
		s, _, _ := Load(tt.st)
		saveErr := Save(tt.st, &s)
		if tt.wantErr == "" {
			if err != nil || saveErr != nil {
				t.Errorf("%s: CheckWritable %v, Save %v; want both to pass", tt.name, err, saveErr)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: CheckWritable %v, want %q", tt.name, err, tt.wantErr)
		}
		if !errors.Is(saveErr, ErrForeign) {
			t.Errorf("%s: Save %v, want it refused too", tt.name, saveErr)
		}
		if string(before) != string(tt.st.Bytes()) {
			t.Errorf("%s: the refused store was written", tt.name)
		}
	}
}

// FuzzCheckWritable: whatever the bytes, CheckWritable never panics, and
// when it refuses, Save does not write.
func FuzzCheckWritable(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add([]byte("KEELBOOT"), []byte("LUKS\xba\xbe"))
	f.Add(MarshalRecord(DefaultState()), []byte("_BHRfS_M"))
	f.Fuzz(func(t *testing.T, head, at64k []byte) {
		m := NewMemStore(BootStateMinSize)
		copy(m.Bytes(), head)
		copy(m.Bytes()[copy1Offset:], at64k)
		before := string(m.Bytes())
		err := CheckWritable(m)
		s, _, _ := Load(m)
		saveErr := Save(m, &s)
		if err != nil && (saveErr == nil || string(m.Bytes()) != before) {
			t.Fatalf("CheckWritable refused (%v) but Save wrote (%v)", err, saveErr)
		}
	})
}

// eioStore fails every read at or past bad with EIO.
type eioStore struct {
	*MemStore
	bad int64
}

func (s eioStore) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > s.bad {
		return 0, syscall.EIO
	}
	return s.MemStore.ReadAt(p, off)
}

// TestCheckWritableUnreadable: a bootstate device that cannot be read is
// refused for writing, but not as foreign: its state is unknown for this
// boot, not absent (the init then makes no upper it could not merge).
func TestCheckWritableUnreadable(t *testing.T) {
	err := CheckWritable(eioStore{NewMemStore(BootStateMinSize), 0})
	if err == nil || errors.Is(err, ErrForeign) || !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "cannot be read") {
		t.Errorf("both copies unreadable: %v; want an I/O error that is not ErrForeign", err)
	}
	garbage := newSectorStore(0)
	copy(garbage.Bytes()[copyOffset(1):], "not a keel record, nor blank")
	if err := CheckWritable(garbage); err == nil || errors.Is(err, ErrForeign) || !errors.Is(err, syscall.EIO) {
		t.Errorf("copy 0 unreadable, copy 1 garbage: %v; want an I/O error that is not ErrForeign", err)
	}
	// A header whose first sector cannot be read shows its magic to no
	// probe; what follows it is no blank keel partition.
	luks := newSectorStore(0)
	copy(luks.Bytes()[4096:], `{"keyslots":{"0":{"type":"luks2"}}}`) // LUKS2's JSON area
	btrfs := newSectorStore(1)
	copy(btrfs.Bytes()[copyOffset(1)+0x32b:], "sys_chunk_array") // the rest of a btrfs superblock
	for name, st := range map[string]*sectorStore{"LUKS2, sector 0 unreadable": luks, "btrfs, its superblock's first sector unreadable": btrfs} {
		before := string(st.Bytes())
		s, _, _ := Load(st)
		if err := CheckWritable(st); err == nil || errors.Is(err, ErrForeign) || !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: CheckWritable %v; want an I/O error that is not ErrForeign", name, err)
		}
		if err := Save(st, &s); err == nil || string(st.Bytes()) != before {
			t.Errorf("%s: Save %v, and the device changed: %v", name, err, string(st.Bytes()) != before)
		}
	}
}

// sectorStore is a MemStore whose record copies in bad read EIO until a
// write covers the whole unit (the disk's physical sector: 512 bytes, or
// 4096 on a 4Kn or 512e drive) around them, as a sector a power loss left
// unreadable.
type sectorStore struct {
	*MemStore
	unit int64
	bad  map[int64]bool // unit starts
	dead bool           // a write does not make a bad unit readable
	deaf bool           // a write to a bad unit fails too
	// readOnly units fail every write and read what they held.
	readOnly map[int64]bool
	writes   map[int64]int // writes that reached each copy's offset
}

func newSectorStore(bad ...int) *sectorStore { return newSectorStoreUnit(RecordSize, bad...) }

func newSectorStoreUnit(unit int64, bad ...int) *sectorStore {
	s := &sectorStore{MemStore: NewMemStore(BootStateMinSize), unit: unit, bad: map[int64]bool{}}
	for _, i := range bad {
		s.bad[copyOffset(i)/unit*unit] = true
	}
	return s
}

func (s *sectorStore) ReadAt(p []byte, off int64) (int, error) {
	for o := range s.bad {
		if off < o+s.unit && off+int64(len(p)) > o {
			return 0, syscall.EIO
		}
	}
	return s.MemStore.ReadAt(p, off)
}

func (s *sectorStore) WriteAt(p []byte, off int64) (int, error) {
	for o := range s.readOnly {
		if off < o+s.unit && off+int64(len(p)) > o {
			return 0, syscall.EIO
		}
	}
	if s.writes == nil {
		s.writes = map[int64]int{}
	}
	s.writes[off]++
	for o := range s.bad {
		if s.deaf && off < o+s.unit && off+int64(len(p)) > o {
			return 0, syscall.EIO
		}
		if off < o+s.unit && off+int64(len(p)) > o && (off > o || off+int64(len(p)) < o+s.unit) {
			return 0, syscall.EIO // part of a unit the drive cannot read back to merge
		}
		if off <= o && off+int64(len(p)) >= o+s.unit && !s.dead {
			delete(s.bad, o)
		}
	}
	return s.MemStore.WriteAt(p, off)
}

// TestFirstWriteLeftUnreadable: the first record ever written, cut by a
// power loss that left its sector unreadable, beside a copy never written:
// the store stays writable, the next record goes into the blank copy, and
// the one after rewrites the unreadable sector. Such a store used to be
// refused at every boot (nothing else rewrites the sector): no durable
// boot counting, no mark-good, no update, for good.
func TestFirstWriteLeftUnreadable(t *testing.T) {
	for _, tc := range []struct {
		bad  int
		unit int64
	}{{0, 512}, {1, 512}, {0, 4096}, {1, 4096}} {
		bad := tc.bad
		st := newSectorStoreUnit(tc.unit, bad)
		if err := CheckWritable(st); err != nil {
			t.Fatalf("copy %d unreadable, the other blank: CheckWritable %v", bad, err)
		}
		s, warnings, err := Load(st)
		if err != nil || s.Initialised || len(warnings) == 0 {
			t.Fatalf("copy %d unreadable: Load %+v, %q, %v: want the defaults, with a warning", bad, s, warnings, err)
		}
		s.Slots[0].Tries--
		if err := Save(st, &s); err != nil {
			t.Fatalf("copy %d unreadable: first Save: %v", bad, err)
		}
		if len(st.bad) == 0 {
			t.Errorf("copy %d unreadable (%d-byte sectors): the first Save wrote into it, not into the blank copy", bad, tc.unit)
		}
		if got := mustLoad(t, st); got != s {
			t.Fatalf("copy %d unreadable: read back %+v, want %+v", bad, got, s)
		}
		if err := Save(st, &s); err != nil {
			t.Fatalf("copy %d unreadable: second Save: %v", bad, err)
		}
		if len(st.bad) != 0 {
			t.Errorf("copy %d unreadable (%d-byte sectors): the second Save did not rewrite it", bad, tc.unit)
		}
		if _, warnings, err := Load(st); err != nil || len(warnings) != 0 {
			t.Errorf("copy %d rewritten: Load warnings %q, %v; want both copies valid", bad, warnings, err)
		}
	}
}

// TestDeadCopyKeepsTheState: a record copy whose sector takes writes but
// never reads back (a dying SD card or eMMC), or fails writes too, does not
// take the boot state with it: Save reads an unreadable copy back after
// writing it, and when that or the write fails with EIO writes the record
// over the other copy, so that every Load gives the state last saved. Save
// used to write every other record into the dead copy, and every boot read
// the older state of the other (a trial's tries never used up, a
// confirmation lost); a copy that failed writes made every other Save fail
// (a trial that cannot be counted is not booted: with the good slot's
// count failing too, no slot booted). With both copies dead, Save fails.
func TestDeadCopyKeepsTheState(t *testing.T) {
	for _, deaf := range []bool{false, true} {
		for dead := range 2 {
			st := newSectorStoreUnit(physBlock, dead)
			st.dead, st.deaf = true, deaf
			what := fmt.Sprintf("copy %d dead (writes failing: %v)", dead, deaf)
			if err := CheckWritable(st); err != nil {
				t.Fatalf("%s, the other blank: CheckWritable %v", what, err)
			}
			s, _, err := Load(st)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				s.Slots[1] = SlotState{Priority: 1, Tries: uint8(5 - i)}
				if err := Save(st, &s); err != nil {
					t.Fatalf("%s, save %d: %v", what, i, err)
				}
				got, _, err := Load(st)
				if err != nil || got.Slot(SlotB).Tries != uint8(5-i) || got.Seq != s.Seq {
					t.Fatalf("%s, after save %d: loaded %+v, %v; want tries %d at sequence %d", what, i, got, err, 5-i, s.Seq)
				}
			}
			if err := SaveBoth(st, &s); err != nil {
				t.Fatalf("%s: SaveBoth %v", what, err)
			}
			if got := mustLoad(t, st); got.Seq != s.Seq {
				t.Errorf("%s: after SaveBoth loaded sequence %d, want %d", what, got.Seq, s.Seq)
			}
		}
	}
	st := newSectorStoreUnit(physBlock, 0)
	st.dead = true
	s, _, _ := Load(st)
	if err := Save(st, &s); err != nil {
		t.Fatal(err)
	}
	st.bad[copyOffset(1)/physBlock*physBlock] = true
	if err := Save(st, &s); err == nil {
		t.Error("both copies dead: Save wrote, want an error")
	}
}

// TestFailingCopyStillReadable: a copy whose writes fail with EIO but
// whose sector still reads its older valid record is not written around:
// a power cut during a write over the other copy, in place, would hand
// the next boot that older record (more tries, a lower rollback floor).
// Save fails, as it did, and the device holds what it held. After a fall
// back, SaveBoth writes once: a second write over the one copy the device
// keeps could only tear what the first made durable (found by a review).
func TestFailingCopyStillReadable(t *testing.T) {
	st := newSectorStoreUnit(physBlock)
	s := DefaultState()
	if err := SaveBoth(st, &s); err != nil { // both copies hold a record
		t.Fatal(err)
	}
	want := mustLoad(t, st)
	target := 0
	if newest(readCopies(st)) == 0 {
		target = 1
	}
	st.readOnly = map[int64]bool{copyOffset(target) / physBlock * physBlock: true}
	s.Slots[1] = SlotState{Priority: 1, Tries: 1}
	if err := Save(st, &s); err == nil {
		t.Fatalf("copy %d fails writes but reads its older record: Save wrote around it", target)
	}
	if got := mustLoad(t, st); got != want {
		t.Errorf("after the failed save: %+v, want %+v as it was", got, want)
	}

	dead := newSectorStoreUnit(physBlock, 1)
	dead.dead = true
	s = DefaultState()
	if err := Save(dead, &s); err != nil { // copy 0
		t.Fatal(err)
	}
	before := dead.writes[copyOffset(0)]
	if err := SaveBoth(dead, &s); err != nil {
		t.Fatal(err)
	}
	if n := dead.writes[copyOffset(0)] - before; n != 1 {
		t.Errorf("SaveBoth with copy 1 dead wrote copy 0 %d times, want once", n)
	}
	if got := mustLoad(t, dead); got.Seq != s.Seq {
		t.Errorf("loaded sequence %d, want %d", got.Seq, s.Seq)
	}
}

// garbage1Cut is a bootstate partition whose copy 1 sector is dying and
// gives back other bytes (not a keel record, no EIO), and whose power fails
// during the first write to copy 0 once armed, only its first k bytes
// landing.
type garbage1Cut struct {
	*MemStore
	armed, off bool
	k          int
}

func (d *garbage1Cut) ReadAt(p []byte, off int64) (int, error) {
	if d.off {
		return 0, errPowerCut
	}
	n, err := d.MemStore.ReadAt(p, off)
	if in1(off, len(p)) {
		for i := range p {
			p[i] = byte(0x5a ^ i)
		}
	}
	return n, err
}

func (d *garbage1Cut) WriteAt(p []byte, off int64) (int, error) {
	if d.off {
		return 0, errPowerCut
	}
	if d.armed && in0(off, len(p)) {
		d.MemStore.WriteAt(p[:d.k], off)
		d.off = true
		return d.k, errPowerCut
	}
	return d.MemStore.WriteAt(p, off)
}

func (d *garbage1Cut) Sync() error {
	if d.off {
		return errPowerCut
	}
	return nil
}

// TestTornBesideGarbageIsLost: a power cut during the record written over
// copy 0 in its place (copy 1 gives back other bytes) leaves a torn keel
// record beside garbage: keel's partition with its state lost, unknown
// (the init counts from the data partition's copy), not another tool's
// data. It was refused as foreign, so the init counted from the defaults
// at every boot: slot a first, a trial that crashes after switch_root
// booted for ever, the last good slot b never, the floor 0 (found by a
// hunting helper). Garbage beside a blank copy, or beside one that holds
// no part of the magic, is still foreign.
func TestTornBesideGarbageIsLost(t *testing.T) {
	m := &garbage1Cut{MemStore: NewMemStore(BootStateMinSize), k: 200}
	s := DefaultState()
	must(t, s.MarkGood(SlotB, "B1", 5))
	must(t, s.SetNext(SlotA, DefaultTries, "A2"))
	must(t, Save(m.MemStore, &s))
	if err := CheckWritable(m); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	st, _, _ := Load(m)
	m.armed = true
	_, _ = Select(m, st, Request{}, func(Choice) error { return nil }) // the count, cut
	m.off = false
	err := CheckWritable(m)
	if !errors.Is(err, ErrLost) || errors.Is(err, ErrForeign) || !strings.Contains(err.Error(), "beside a keel record cut by a power loss in copy 0: the boot state is lost") {
		t.Fatalf("after the cut: %v; want the state lost, not foreign", err)
	}

	blank := &garbage1Cut{MemStore: NewMemStore(BootStateMinSize)}
	if err := CheckWritable(blank); !errors.Is(err, ErrForeign) || !errors.Is(err, ErrGarbage) {
		t.Errorf("garbage beside a blank copy: %v, want foreign garbage", err)
	}
	// Another tool's bytes with a part of the magic only (an integer 75 at
	// byte 0), or none of it: foreign. A cut write over a keel record keeps
	// the whole magic, old bytes or new.
	for _, head := range []string{"K\x00\x00\x00\x00\x00\x00\x00", "\x00\x00\x00\x00\x00\x00\x00\x00"} {
		other := &garbage1Cut{MemStore: NewMemStore(BootStateMinSize)}
		rec := make([]byte, RecordSize)
		copy(rec, head)
		for i := len(recordMagic); i < len(rec); i++ {
			rec[i] = 0x33
		}
		other.MemStore.WriteAt(rec, copyOffset(0))
		if err := CheckWritable(other); !errors.Is(err, ErrForeign) {
			t.Errorf("garbage beside a copy starting %q: %v, want foreign", head, err)
		}
	}
}
