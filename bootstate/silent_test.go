// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"strings"
	"syscall"
	"testing"
)

// droppingDisk takes writes and flushes without an error and keeps its
// old bytes (a worn SD card or eMMC gone read-only): writes land in the
// page cache only; DropCache (the read back past the cache) and a power
// cycle see the device.
type droppingDisk struct{ dev, cache *MemStore }

func bootOn(dev *MemStore) *droppingDisk { return &droppingDisk{dev, dev.Clone()} }

func (d *droppingDisk) ReadAt(p []byte, off int64) (int, error)  { return d.cache.ReadAt(p, off) }
func (d *droppingDisk) WriteAt(p []byte, off int64) (int, error) { return d.cache.WriteAt(p, off) }
func (d *droppingDisk) Sync() error                              { return nil }
func (d *droppingDisk) DropCache(off, n int64) {
	copy(d.cache.Bytes()[off:off+n], d.dev.Bytes()[off:off+n])
}

// TestTrialOnDeviceDroppingWrites: a bootstate partition that takes
// writes and never keeps them cannot count a trial's tries, so the trial
// is not booted and the good slot is; Save says the copy reads back other
// bytes. Trusted, the write let a trial that crashes the machine boot at
// every boot, its tries never spent on the medium, and the good slot never
// (found by a hunting helper).
func TestTrialOnDeviceDroppingWrites(t *testing.T) {
	dev := NewMemStore(BootStateMinSize)
	s := DefaultState()
	must(t, s.MarkGood(SlotA, "img-a", 1))
	must(t, s.SetNext(SlotB, 3, "img-b"))
	must(t, SaveBoth(dev, &s))
	var boots []Slot
	for range 4 {
		disk := bootOn(dev) // a power cycle: the cache is gone
		sel, err := Select(disk, mustLoad(t, disk), Request{}, func(Choice) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		boots = append(boots, sel.Choice.Slot) // b, if booted, restarts after switch_root
		if w := strings.Join(sel.Warnings, "\n"); sel.Choice.Slot == SlotA && !strings.Contains(w, "reads back other bytes than were written") {
			t.Errorf("warnings %q: want the copy that does not keep its writes named", w)
		}
	}
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
