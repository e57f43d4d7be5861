// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

// The read-back's edges, from a review of its first forms: a flaky
// read-back of the fall back's copy, a device that answers stale bytes
// once, and a flush that fails while the drive's cache answers reads.

// deadCopy0: copy 0's sector is dead (writes and reads fail with EIO);
// after each write to copy 1, its next n reads fail (a flaky read-back).
type deadCopy0 struct {
	*MemStore
	dead    bool
	n, left int
}

func in0(off int64, n int) bool {
	return off < copyOffset(0)+RecordSize && off+int64(n) > copyOffset(0)
}
func in1(off int64, n int) bool {
	return off < copyOffset(1)+RecordSize && off+int64(n) > copyOffset(1)
}

func (d *deadCopy0) WriteAt(p []byte, off int64) (int, error) {
	if d.dead && in0(off, len(p)) {
		return 0, syscall.EIO
	}
	if in1(off, len(p)) {
		d.left = d.n
	}
	return d.MemStore.WriteAt(p, off)
}

func (d *deadCopy0) ReadAt(p []byte, off int64) (int, error) {
	if d.dead && in0(off, len(p)) {
		return 0, syscall.EIO
	}
	if d.left > 0 && in1(off, len(p)) {
		d.left--
		return 0, syscall.EIO
	}
	return d.MemStore.ReadAt(p, off)
}

// The fall back's own read-back, flaky as the target's was: the record
// lands on the other copy, Save fails, the device counts the try, the
// caller does not.
func TestFallbackFlakyReadBack(t *testing.T) {
	m := &deadCopy0{MemStore: NewMemStore(BootStateMinSize)}
	s := State{Slots: [2]SlotState{{Priority: 1, Good: true}, {Priority: 2, Tries: 1}}}
	must(t, SaveBoth(m, &s)) // copy 1 newest
	m.dead, m.n = true, 2
	sel, err := Select(m, s, Request{}, func(Choice) error { return nil })
	got := mustLoad(t, m.MemStore)
	if err != nil || sel.Choice.Slot != SlotB && got.Slot(SlotB).Tries == 0 {
		t.Errorf("the trial was skipped while its last try is spent on the device: %s", got.Slot(SlotB))
	}
}

// staleThenNew: after a write, the first read of the written range
// returns the old bytes, later reads the new (a read cache in a USB bridge
// or a card). The read-back sees other bytes: evidence of a medium that
// misreads, not a read error.
type staleThenNew struct {
	*MemStore
	old  []byte
	off  int64
	left int
}

func (d *staleThenNew) WriteAt(p []byte, off int64) (int, error) {
	d.old = bytes.Clone(d.MemStore.Bytes()[off : off+int64(len(p))])
	d.off, d.left = off, 1
	return d.MemStore.WriteAt(p, off)
}

func (d *staleThenNew) ReadAt(p []byte, off int64) (int, error) {
	if d.left > 0 && off == d.off && len(p) <= len(d.old) {
		d.left--
		return copy(p, d.old), nil
	}
	return d.MemStore.ReadAt(p, off)
}

// TestStaleThenNewReadBack: a read-back that gives other bytes is not
// trusted because a later read gives the record: the save fails.
func TestStaleThenNewReadBack(t *testing.T) {
	m := &staleThenNew{MemStore: NewMemStore(BootStateMinSize)}
	s := State{Slots: [2]SlotState{{Priority: 1, Good: true}, {Priority: 2, Tries: 1}}}
	must(t, SaveBoth(m.MemStore, &s))
	if _, err := save(m, &s); !errors.Is(err, errReadBackMismatch) {
		t.Errorf("save: %v; want the mismatch", err)
	}
}

// TestFlushFailsTrialNotCounted: a drive with a volatile write cache whose
// cache flush fails with EIO (a dying eMMC or SD card): writes land in the
// drive's cache and read back from it, past the page cache; Sync reports
// EIO and persists nothing; a power cycle (or a reset that cuts the
// card's power) loses the cache.
func TestFlushFailsTrialNotCounted(t *testing.T) {
	boots := chosen(trialBoots(t, 1, 4, func(dev *MemStore) *cachedDisk {
		return &cachedDisk{dev: dev, cache: dev.Clone(), syncErr: syscall.EIO}
	}))
	if boots[len(boots)-1] != SlotA {
		t.Errorf("boots %v: a trial with one try, its count never flushed (Sync: EIO), boots at every boot; want the good slot", boots)
	}
}
