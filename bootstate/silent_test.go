// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"strings"
	"syscall"
	"testing"
)

// cachedDisk takes writes into a cache over dev and never onto dev
// itself; a power cycle loses the cache (trialBoots makes a fresh one).
// pageCache says the cache is the page cache, which DropCache (the read
// back past it) drops, so that the medium answers: a worn SD card or eMMC
// gone read-only that reports no error. Else the drive's own volatile
// cache answers every read, and syncErr is what its flush reports.
type cachedDisk struct {
	dev, cache *MemStore
	pageCache  bool
	syncErr    error
}

func (d *cachedDisk) ReadAt(p []byte, off int64) (int, error)  { return d.cache.ReadAt(p, off) }
func (d *cachedDisk) WriteAt(p []byte, off int64) (int, error) { return d.cache.WriteAt(p, off) }
func (d *cachedDisk) Sync() error                              { return d.syncErr }
func (d *cachedDisk) DropCache(off, n int64) {
	if d.pageCache {
		copy(d.cache.Bytes()[off:off+n], d.dev.Bytes()[off:off+n])
	}
}

// trialBoots is the selections of n boots of a good a and a trial b with
// tries tries, on disks that disk makes over one medium at each power
// cycle; b, if booted, crashes the machine after switch_root.
func trialBoots(t *testing.T, tries, n int, disk func(dev *MemStore) *cachedDisk) []Selection {
	t.Helper()
	dev := NewMemStore(BootStateMinSize)
	s := DefaultState()
	must(t, s.MarkGood(SlotA, "img-a", 1))
	must(t, s.SetNext(SlotB, tries, "img-b"))
	must(t, SaveBoth(dev, &s))
	var sels []Selection
	for range n {
		d := disk(dev)
		sel, err := Select(d, mustLoad(t, d), Request{}, func(Choice) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		sels = append(sels, sel)
	}
	return sels
}

// chosen is the slot each selection booted.
func chosen(sels []Selection) []Slot {
	var out []Slot
	for _, s := range sels {
		out = append(out, s.Choice.Slot)
	}
	return out
}

// TestTrialOnDeviceDroppingWrites: a bootstate partition that takes
// writes and never keeps them cannot count a trial's tries, so the trial
// is not booted and the good slot is; Save says the copy reads back other
// bytes. Trusted, the write let a trial that crashes the machine boot at
// every boot, its tries never spent on the medium, and the good slot never
// (found by a hunting helper).
func TestTrialOnDeviceDroppingWrites(t *testing.T) {
	sels := trialBoots(t, 3, 4, func(dev *MemStore) *cachedDisk {
		return &cachedDisk{dev: dev, cache: dev.Clone(), pageCache: true}
	})
	for _, sel := range sels {
		if w := strings.Join(sel.Warnings, "\n"); sel.Choice.Slot == SlotA && !strings.Contains(w, "reads back other bytes than were written") {
			t.Errorf("warnings %q: want the copy that does not keep its writes named", w)
		}
	}
	boots := chosen(sels)
	for _, x := range boots {
		if x != SlotA {
			t.Fatalf("boots %v: want the good slot, the trial's tries not countable", boots)
		}
	}
}

// failOnce fails the next write with EIO while failed is false.
type failOnce struct {
	*MemStore
	failed bool
}

func (f *failOnce) WriteAt(p []byte, off int64) (int, error) {
	if !f.failed {
		f.failed = true
		return 0, syscall.EIO
	}
	return f.MemStore.WriteAt(p, off)
}

// TestUntriedTrialKeepsItsTry: a trial whose try could not be counted (the
// write failed, the copy still holds its older record) is skipped with the
// try it had: the good slot's count, written next, does not store the try
// charged in memory. A trial on its last try was retired, never attempted
// (found by a hunting helper).
func TestUntriedTrialKeepsItsTry(t *testing.T) {
	m := &failOnce{MemStore: NewMemStore(BootStateMinSize), failed: true}
	s := State{Slots: [2]SlotState{{Priority: 1, Good: true}, {Priority: 2, Tries: 1}}}
	must(t, SaveBoth(m, &s))
	m.failed = false
	sel, err := Select(m, s, Request{}, func(Choice) error { return nil })
	if err != nil || sel.Choice.Slot != SlotA {
		t.Fatal(sel.Choice, err)
	}
	if got := mustLoad(t, m.MemStore).Slot(SlotB); got.Tries != 1 || got.Priority != 2 {
		t.Errorf("b, never attempted, stored as %s; want its one try kept", got)
	}
}

// flakyReads fails the next n reads after each write with EIO (a dying
// card retrying a read, a USB hiccup), then reads.
type flakyReads struct {
	*MemStore
	n, left int
}

func (f *flakyReads) WriteAt(p []byte, off int64) (int, error) {
	f.left = f.n
	return f.MemStore.WriteAt(p, off)
}

func (f *flakyReads) ReadAt(p []byte, off int64) (int, error) {
	if f.left > 0 {
		f.left--
		return 0, syscall.EIO
	}
	return f.MemStore.ReadAt(p, off)
}

// TestFlakyReadBackKeepsTheCount: a write that landed, read back through
// reads that fail once or twice, is a write that landed: the trial's try
// is counted and the trial boots. Taken for a failed write, the try stayed
// spent on the device while the boot skipped the trial, and the next write
// found the state changed: a trial on its last try was retired never
// attempted (found in review).
func TestFlakyReadBackKeepsTheCount(t *testing.T) {
	for _, n := range []int{1, 2} {
		m := &flakyReads{MemStore: NewMemStore(BootStateMinSize)}
		s := State{Slots: [2]SlotState{{Priority: 1, Good: true}, {Priority: 2, Tries: 1}}}
		must(t, SaveBoth(m, &s))
		m.n = n
		sel, err := Select(m, s, Request{}, func(Choice) error { return nil })
		if err != nil || sel.Choice.Slot != SlotB {
			t.Errorf("%d failed reads after each write: booted %v, %v; want the trial, its try counted", n, sel.Choice.Slot, err)
		}
		if got := mustLoad(t, m.MemStore).Slot(SlotB); got.Tries != 0 || got.Priority != 2 {
			t.Errorf("%d failed reads: b stored as %s; want its try spent by this boot", n, got)
		}
	}
}
