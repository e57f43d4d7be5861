// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"errors"
	"fmt"
)

// errPowerCut is what the fault store returns once the power is off.
var errPowerCut = errors.New("power cut")

// faultKind is how a power cut hits the one write of a Save.
type faultKind int

const (
	// cutPrefix: only the first k bytes of the write reach the disk.
	cutPrefix faultKind = iota
	// cutSuffix: only the last k bytes reach the disk (a device that
	// writes a sector back to front, or reorders within it).
	cutSuffix
	// lostFlush: the write completes into the drive's volatile cache and
	// the power fails during Sync; k = 1 keeps the cached write, k = 0
	// loses it.
	lostFlush
)

type fault struct {
	kind faultKind
	k    int
}

func (f fault) String() string {
	return fmt.Sprintf("%s %d", [...]string{"prefix", "suffix", "lost flush, keep"}[f.kind], f.k)
}

type pendingWrite struct {
	off int64
	b   []byte
}

// faultStore is a Store whose power fails during the first write (or the
// first Sync, for lostFlush). What survives is in disk.
type faultStore struct {
	disk    *MemStore
	f       fault
	pending []pendingWrite
	off     bool // the power is off: every call fails
}

func newFaultStore(disk *MemStore, f fault) *faultStore { return &faultStore{disk: disk, f: f} }

func (s *faultStore) ReadAt(p []byte, off int64) (int, error) {
	if s.off {
		return 0, errPowerCut
	}
	n, err := s.disk.ReadAt(p, off)
	for _, w := range s.pending { // the drive serves reads from its cache
		if off < w.off+int64(len(w.b)) && w.off < off+int64(len(p)) {
			copy(p[max(w.off-off, 0):], w.b[max(off-w.off, 0):])
		}
	}
	return n, err
}

func (s *faultStore) WriteAt(p []byte, off int64) (int, error) {
	if s.off {
		return 0, errPowerCut
	}
	k := min(max(s.f.k, 0), len(p))
	switch s.f.kind {
	case lostFlush:
		s.pending = append(s.pending, pendingWrite{off, append([]byte(nil), p...)})
		return len(p), nil
	case cutPrefix:
		if _, err := s.disk.WriteAt(p[:k], off); err != nil {
			return 0, err
		}
	case cutSuffix:
		if _, err := s.disk.WriteAt(p[len(p)-k:], off+int64(len(p)-k)); err != nil {
			return 0, err
		}
	}
	s.off = true
	return k, errPowerCut
}

func (s *faultStore) Sync() error {
	if s.off {
		return errPowerCut
	}
	if s.f.kind == lostFlush && s.f.k == 1 {
		for _, w := range s.pending {
			if _, err := s.disk.WriteAt(w.b, w.off); err != nil {
				return err
			}
		}
	}
	s.pending, s.off = nil, true
	return errPowerCut
}

// faultsFor lists every fault tested on a write of n bytes: a cut after
// each byte offset 0..n from the front and from the back, and a flush lost
// or kept.
func faultsFor(n int) []fault {
	var fs []fault
	for k := 0; k <= n; k++ {
		fs = append(fs, fault{cutPrefix, k}, fault{cutSuffix, k})
	}
	return append(fs, fault{lostFlush, 0}, fault{lostFlush, 1})
}
