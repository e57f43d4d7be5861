// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"syscall"

	"github.com/keel-boot/keel/devices"
	"golang.org/x/sys/unix"
)

// Store is where the boot state lives: the bootstate partition, a file, or
// memory in tests. An *os.File (of a block device too) is a Store; its Sync
// is fsync, which on a block device also flushes the disk's write cache.
type Store interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// copyRead is what one record copy held.
type copyRead struct {
	state State
	err   error // nil: valid
	io    bool  // err is a read error other than a short read
	blank bool  // never written: all zeros or all ones
	ours  bool  // may be a keel record cut by a power loss (tornRecord)
	keel  bool  // the whole magic: a keel record, whole or torn (a cut write over a record keeps its magic)
	short bool  // the store ends before this copy (too small a device)
}

// readCopies reads and parses both copies.
func readCopies(st Store) [2]copyRead {
	var c [2]copyRead
	for i := range c {
		b := make([]byte, RecordSize)
		n, err := st.ReadAt(b, copyOffset(i))
		switch {
		case n == RecordSize:
			c[i].state, c[i].err = ParseRecord(b)
			c[i].blank = c[i].err != nil && isBlank(b)
			c[i].ours = tornRecord(b)
			c[i].keel = string(b[:len(recordMagic)]) == recordMagic
		case err == nil || errors.Is(err, io.EOF):
			c[i].err, c[i].short = fmt.Errorf("short read: %d bytes, expected %d", n, RecordSize), true
		default:
			c[i].err, c[i].io = err, true
		}
		if c[i].err != nil {
			c[i].err = fmt.Errorf("boot state copy %d at byte %d: %w", i, copyOffset(i), c[i].err)
		}
	}
	return c
}

// newest returns the index of the valid copy with the highest sequence
// number (copy 0 on a tie), or -1 when neither is valid.
func newest(c [2]copyRead) int {
	switch {
	case c[0].err == nil && (c[1].err != nil || c[0].state.Seq >= c[1].state.Seq):
		return 0
	case c[1].err == nil:
		return 1
	}
	return -1
}

// Load reads the boot state: the valid copy with the highest sequence
// number. With neither copy valid (a blank or garbage partition) it returns
// DefaultState with Initialised false. The warnings name each copy that was
// not valid and why, so the caller can report them; after a power cut one
// torn copy is expected. Load fails only when neither copy could be read at
// all (I/O errors, not a short or blank device), and then still returns
// the defaults.
func Load(st Store) (State, []string, error) {
	c := readCopies(st)
	var warnings []string
	for _, r := range c {
		// A copy never written (all zeros or all ones, as a fresh disk or
		// an erased flash block reads) is expected, not worth a warning.
		if r.err != nil && !r.blank {
			warnings = append(warnings, r.err.Error())
		}
	}
	i := newest(c)
	if i >= 0 {
		return c[i].state, warnings, nil
	}
	if c[0].blank && c[1].blank {
		return DefaultState(), nil, nil
	}
	warnings = append(warnings, "no valid boot state record: using the defaults ("+describe(DefaultState())+")")
	if c[0].io && c[1].io {
		return DefaultState(), warnings, fmt.Errorf("boot state unreadable: %w; %w", c[0].err, c[1].err)
	}
	return DefaultState(), warnings, nil
}

// Save writes s as the next record: sequence s.Seq+1, into the copy that
// does not hold the newest valid record, so that an interrupted write can
// only destroy the older copy and a reader then finds s as it was before.
// It syncs before returning: when Save returns nil, the state survives a
// power cut. On success s.Seq is the sequence written and s is
// Initialised.
//
// Save first re-reads the store and refuses to write when the newest record
// is no longer the one s was loaded from: two writers (say, two slotctl
// runs) must not silently undo each other.
func Save(st Store, s *State) error {
	_, err := save(st, s)
	return err
}

// save is Save, and reports whether the record went over the other copy
// (the target copy could not keep it).
func save(st Store, s *State) (fellBack bool, err error) {
	c := readCopies(st)
	cur := newest(c)
	stored := uint64(0)
	if cur >= 0 {
		stored = c[cur].state.Seq
	}
	if cur < 0 {
		if err := checkForeign(st, c); err != nil {
			return false, err
		}
	}
	if stored != s.Seq {
		return false, fmt.Errorf("boot state changed since it was read: stored sequence %d, expected %d (another writer?)", stored, s.Seq)
	}
	if s.Seq == math.MaxUint64 {
		return false, fmt.Errorf("boot state sequence %d cannot grow: reinitialise the bootstate partition", s.Seq)
	}
	target := 0
	switch {
	case cur == 0:
		target = 1
	case cur < 0 && !c[0].blank && c[1].blank:
		// The first write goes where nothing was: copy 0 may be a
		// first write cut by a power loss, or unreadable since.
		target = 1
	}
	next := *s
	next.Seq++
	next.normalise()
	rec := MarshalRecord(next)
	if c[target].io {
		// An unreadable copy is rewritten with its whole physical block
		// (the rest is unused): a drive with 4 KiB physical sectors cannot
		// rewrite 512 bytes of a sector it cannot read.
		rec = append(rec, make([]byte, physBlock-len(rec))...)
	}
	err = writeRecord(st, target, rec)
	failed := errors.Is(err, syscall.EIO)
	flushed := err == nil
	if err == nil {
		// Read back from the device after every write, not only over a
		// copy that could not be read: a dying SD card or eMMC may take
		// writes and flushes without an error and keep its old bytes.
		// Trusted, such a write let a trial that crashes the machine
		// boot for ever, its try never counted on the medium, and the
		// good slot never again (found by a hunting helper).
		err = readsBack(st, target, rec)
		failed = err != nil
	}
	if err != nil && !failed {
		return false, err // not the medium: a device too small (CheckWritable), a power cut
	}
	if failed {
		// The copy does not take the record (a write or a flush that
		// fails with EIO), or takes writes it cannot give back (a dying
		// SD card or eMMC, a sector that is not remapped). Left there,
		// the trial's try would go uncounted — the boot refuses a trial
		// it cannot count, and the good slot's own count failed the same
		// way, leaving no slot to boot — or, written and unreadable, be
		// lost with every record after it. The record goes over the
		// other copy, in place: the only one the device keeps, which a
		// power cut during this write can tear (the data partition's
		// copy of the boot state then serves, docs/boot-sequence.md).
		// Not when the copy still reads back, from the device, as a
		// valid record (an older one: the write failed, the sector did
		// not): a torn write over the other copy would then hand the
		// boot that older state, more tries, a lower rollback floor.
		// What the failed write left in the page cache is dropped
		// first: read back, it would pass for the newest record.
		dropCache(st, target, len(rec))
		if landed(st, target, rec, flushed, err) {
			// The record is on the device after all: a write that
			// reported EIO and landed, or read-backs that failed and a
			// read that did not. Failing here would leave it counted on
			// the device and not in the caller's state: the next write
			// then found the state changed, and a trial's last try,
			// never attempted, was spent (found in review).
			next.Initialised = true
			*s = next
			return false, nil
		}
		if validOnDevice(st, target) {
			return false, err
		}
		werr := writeRecord(st, 1-target, rec)
		if werr == nil {
			werr = readsBack(st, 1-target, rec)
			if werr != nil && landed(st, 1-target, rec, true, werr) {
				werr = nil
			}
		}
		if werr != nil {
			return false, fmt.Errorf("%w; and the other copy: %w", err, werr)
		}
	}
	next.Initialised = true
	*s = next
	return failed, nil
}

// landed reports whether a write of rec into copy i that failed with err
// is on the medium after all: the device reads it back (past the page
// cache), err was no read-back giving other bytes (a device that answers
// stale bytes once is not trusted), and the write was flushed — or a
// flush now succeeds: a drive answers reads from its volatile cache, so a
// failed flush read back would count a record the medium never kept
// (found in review).
func landed(st Store, i int, rec []byte, flushed bool, err error) bool {
	if errors.Is(err, errReadBackMismatch) {
		return false
	}
	return (flushed || st.Sync() == nil) && holds(st, i, rec)
}

// errReadBackMismatch is a read-back that read other bytes than were
// written.
var errReadBackMismatch = errors.New("reads back other bytes than were written")

// holds reports whether copy i reads, past the page cache, as rec.
func holds(st Store, i int, rec []byte) bool {
	b, err := readDevice(st, i, len(rec))
	return err == nil && bytes.Equal(b, rec)
}

// validOnDevice reports whether copy i reads, past the page cache, as a
// valid record.
func validOnDevice(st Store, i int) bool {
	b, err := readDevice(st, i, RecordSize)
	if err == nil {
		_, err = ParseRecord(b)
	}
	return err == nil
}

// readDevice reads n bytes of copy i from the device, its page cache
// dropped first (dropCache).
func readDevice(st Store, i, n int) ([]byte, error) {
	dropCache(st, i, n)
	b := make([]byte, n)
	m, err := st.ReadAt(b, copyOffset(i))
	if err == nil && m != n {
		err = io.ErrUnexpectedEOF
	}
	return b[:m], err
}

// dropCache drops the page cache of the pages holding n bytes of copy i,
// so that the next read goes to the device: through the store's own
// DropCache (slotctl's partition of a disk), or fadvise on a file or a
// block device. Whole pages only are dropped, so the range is rounded out
// to them. Clean pages only: those writeRecord synced, or whose write
// failed.
func dropCache(st Store, i, n int) {
	pg := int64(os.Getpagesize())
	off := copyOffset(i) &^ (pg - 1)
	end := (copyOffset(i) + int64(n) + pg - 1) &^ (pg - 1)
	switch d := st.(type) {
	case interface{ DropCache(off, n int64) }:
		d.DropCache(off, end-off)
	case interface{ Fd() uintptr }:
		_ = unix.Fadvise(int(d.Fd()), off, end-off, unix.FADV_DONTNEED)
	}
}

// readsBack checks that copy i reads back as rec from the device, not from
// the page cache the write filled (dropped first for a file or a block
// device: its pages are clean once writeRecord synced them).
func readsBack(st Store, i int, rec []byte) error {
	b, err := readDevice(st, i, len(rec))
	if err != nil {
		// Once more: a dying card retrying a read, a USB hiccup. A
		// write that landed must not be taken for one that did not.
		b, err = readDevice(st, i, len(rec))
	}
	if err != nil {
		return fmt.Errorf("boot state copy %d at byte %d does not read back after a write (%d of %d bytes): %w", i, copyOffset(i), len(b), len(rec), err)
	}
	if !bytes.Equal(b, rec) {
		return fmt.Errorf("boot state copy %d at byte %d %w", i, copyOffset(i), errReadBackMismatch)
	}
	return nil
}

// SaveBoth is Save, then s written once more into the other copy (the next
// sequence, the same state): both copies then hold s, so that one copy
// going bad later (a corrupt block, not a power cut) cannot take s back to
// the state before it. Each write keeps Save's guarantee: a cut in the
// second leaves the first, which already holds s. slotctl saves this way
// (a confirmation, a retirement, an update set next); the init's own
// per-boot write does not, since losing it costs at most one boot's count,
// and a second flush would cost every boot.
func SaveBoth(st Store, s *State) error {
	fellBack, err := save(st, s)
	if err != nil || fellBack {
		// After a fall back the device keeps one copy: a second write
		// over it would only risk what the first made durable.
		return err
	}
	if err := Save(st, s); err != nil {
		return fmt.Errorf("the new state is written, but not its second copy: %w", err)
	}
	return nil
}

// ErrForeign is wrapped by CheckWritable and Save when the store holds
// something other than keel records or blank bytes.
var ErrForeign = errors.New("not a keel boot state")

// ErrGarbage is wrapped, with ErrForeign, when the refusal is for record
// copies that are neither blank nor keel records, no file system or other
// signature found: the bytes a dying sector gives back, or another tool's.
// A machine whose data partition holds a copy of its boot state has lost
// its state there (docs/formats.md, "The data partition's copy").
var ErrGarbage = errors.New("the record copies hold neither blank bytes nor keel records")

// ErrLost is wrapped by CheckWritable and Save when a record copy holds
// neither blank bytes nor a keel record beside a keel record cut by a power
// loss: keel's partition, whose state was lost (not ErrForeign: unknown,
// not absent). Nothing is written over it.
var ErrLost = errors.New("the boot state is lost")

// CheckSize refuses a bootstate partition of size bytes that cannot hold
// both record copies: its first record would be written, and every later
// one would fail.
func CheckSize(size int64) error {
	if need := copyOffset(1) + RecordSize; size < need {
		return fmt.Errorf("%d bytes, too small for both copies of the boot state: at least %d expected (%d KiB are made)", size, need, BootStateMinSize>>10)
	}
	return nil
}

// CheckWritable reports whether keel may write boot state records to st:
// never to a device that ends before its second copy; then
// only where a valid record already is, or where both record copies are
// blank (never written: zeros, or erased flash's ones) or hold the start
// of a keel record (a first write cut by a power loss), one of them
// possibly unreadable if the other is blank (that first write left its
// sector unreadable), and no file system or LUKS signature is found. Anything else is refused, naming what was
// found: a mistyped bootstate= must never destroy a file system.
func CheckWritable(st Store) error {
	c := readCopies(st)
	for _, x := range c {
		if x.short {
			// The first record would go in, every later one fail: a
			// machine whose second boot cannot count (found by a
			// hunting helper).
			return fmt.Errorf("%w: the device is too small for both copies of the boot state (at least %d bytes expected; %d KiB are made)", x.err, copyOffset(1)+RecordSize, BootStateMinSize>>10)
		}
	}
	if newest(c) >= 0 {
		return nil
	}
	return checkForeign(st, c)
}

// tornRecord reports whether a record area that does not parse may be a
// keel record cut by a power loss: each byte of its magic field is zero or
// the magic's own byte there (a write cut from the front leaves the start
// of the magic, one cut from the back its end), and it is not a partition
// table's boot sector. Random bytes or a foreign header match with a
// chance of (2/256)^8.
func tornRecord(b []byte) bool {
	for i := 0; i < len(recordMagic); i++ {
		if b[i] != 0 && b[i] != recordMagic[i] {
			return false
		}
	}
	return !(len(b) >= 512 && b[510] == 0x55 && b[511] == 0xaa)
}

// signatures are the on-disk magics of what a mistyped bootstate= could
// name besides the file systems devices.Probe knows: a whole disk, LVM, md
// RAID, swap and read-only images.
var signatures = []struct {
	off  int64
	want string
	what string
}{
	{512, "EFI PART", "a GPT partition table (a whole disk?)"},
	{512, "LABELONE", "an LVM2 physical volume"},
	{1024, "\xe2\xe1\xf5\xe0", "an EROFS image"},
	{1024, "\x10\x20\xf5\xf2", "an F2FS file system"},
	{4096, "\xfc\x4e\x2b\xa9", "an md RAID member (1.2 superblock)"},
	{4086, "SWAPSPACE2", "swap space"},
	{4086, "SWAP-SPACE", "swap space"},
	{32769, "CD001", "an ISO 9660 image"},
}

// foreignSignature names the first signature found on st, "" if none.
func foreignSignature(st Store) string {
	for _, sig := range signatures {
		b := make([]byte, len(sig.want))
		if n, _ := st.ReadAt(b, sig.off); n == len(b) && string(b) == sig.want {
			return sig.what
		}
	}
	return ""
}

// checkForeign is CheckWritable for a store without a valid record.
func checkForeign(st Store, c [2]copyRead) error {
	if fs, err := devices.Probe(st); err == nil {
		return fmt.Errorf("%w: the device holds %s (uuid %q, label %q): refusing to write boot state records over it", ErrForeign, fs.Type, fs.UUID, fs.Label)
	}
	if what := foreignSignature(st); what != "" {
		return fmt.Errorf("%w: the device holds %s: refusing to write boot state records over it", ErrForeign, what)
	}
	for i, r := range c {
		if r.io && !(c[1-i].blank && blankAround(st, i)) {
			// Not foreign: unreadable. Nothing is written in this boot,
			// and the next may read it (errors.Is(err, ErrForeign) is
			// false: the machine's state is unknown, not absent).
			return fmt.Errorf("%w: refusing to write boot state records to a device that cannot be read", r.err)
		}
		// An unreadable copy beside a blank one, on a device blank all
		// around it, is writable: records alternate between the copies,
		// so at most one was ever written (the first, cut by a power loss
		// that left its sector unreadable), and refusing would keep
		// counting off for good, as nothing else rewrites the sector.
	}
	for i, r := range c {
		if !r.io && !r.blank && !r.ours && !r.short {
			if c[1-i].keel {
				// The other copy is a keel record cut by a power loss:
				// this is keel's partition, whose state is lost (a
				// sector that gives back other bytes, then a cut of
				// the record written over the other copy in its
				// place), not another tool's. Unknown, not absent
				// (errors.Is(err, ErrForeign) is false): the init
				// counts from the data partition's copy of the state,
				// where the defaults would boot slot a for good.
				return fmt.Errorf("copy %d at byte %d is neither blank (zeros) nor a keel record (%v), beside a keel record cut by a power loss in copy %d: %w; refusing to write over it", i, copyOffset(i), r.err, 1-i, ErrLost)
			}
			return fmt.Errorf("%w: copy %d at byte %d is neither blank (zeros) nor a keel record (%v): refusing to write over it (%w)", ErrForeign, i, copyOffset(i), r.err, ErrGarbage)
		}
	}
	return nil
}

// blankAroundLimit is how far blankAround looks (or to the device's end).
const blankAroundLimit = 1 << 20

// physBlock is the largest sector size a disk fails in (a 4Kn or 512e
// drive loses a whole 4 KiB physical sector).
const physBlock = 4096

// blankAround reports whether every sector of st up to blankAroundLimit
// reads back blank but those of copy bad's physical block, which may read
// blank or fail. A file system or LUKS header whose first sector cannot be
// read shows its magic to no probe, but what follows it is not blank
// (XFS's allocation headers, LUKS2's JSON and key slots, FAT's tables, a
// btrfs superblock's mirror data): such a device stays refused. A keel
// bootstate partition holds nothing but the two records.
func blankAround(st Store, bad int) bool {
	b := make([]byte, 512)
	from := copyOffset(bad) &^ (physBlock - 1)
	for off := int64(0); off < blankAroundLimit; off += int64(len(b)) {
		n, err := st.ReadAt(b, off)
		inBad := off >= from && off < from+physBlock
		switch {
		case n == len(b) && isBlank(b):
		case n == len(b):
			return false // something is written here
		case n == 0 && errors.Is(err, io.EOF):
			return true // the device ends
		case inBad && err != nil && !errors.Is(err, io.EOF):
			// the sector a power loss left unreadable, or its neighbours
			// in one physical sector
		default:
			return false
		}
	}
	return true
}

// writeRecord writes one copy and makes it durable.
func writeRecord(st Store, i int, b []byte) error {
	off := copyOffset(i)
	if n, err := st.WriteAt(b, off); err != nil || n != len(b) {
		return fmt.Errorf("write boot state copy %d at byte %d: wrote %d of %d bytes: %w", i, off, n, len(b), orShort(err))
	}
	if err := st.Sync(); err != nil {
		return fmt.Errorf("sync boot state copy %d: %w", i, err)
	}
	return nil
}

func orShort(err error) error {
	if err == nil {
		return io.ErrShortWrite
	}
	return err
}

// describe summarises both slots on one line.
func describe(s State) string {
	return fmt.Sprintf("a: %s; b: %s", s.Slots[0], s.Slots[1])
}

// isBlank reports whether a record area was never written.
func isBlank(b []byte) bool {
	for _, fill := range []byte{0x00, 0xff} {
		if bytes.Count(b, []byte{fill}) == len(b) {
			return true
		}
	}
	return false
}
