package slots

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
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
		case err == nil || errors.Is(err, io.EOF):
			c[i].err = fmt.Errorf("short read: %d bytes, expected %d", n, RecordSize)
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
	c := readCopies(st)
	cur := newest(c)
	stored := uint64(0)
	if cur >= 0 {
		stored = c[cur].state.Seq
	}
	if stored != s.Seq {
		return fmt.Errorf("boot state changed since it was read: stored sequence %d, expected %d (another writer?)", stored, s.Seq)
	}
	if s.Seq == math.MaxUint64 {
		return fmt.Errorf("boot state sequence %d cannot grow: reinitialise the bootstate partition", s.Seq)
	}
	target := 0
	if cur == 0 {
		target = 1
	}
	next := *s
	next.Seq++
	next.normalise()
	if err := writeRecord(st, target, MarshalRecord(next)); err != nil {
		return err
	}
	next.Initialised = true
	*s = next
	return nil
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
