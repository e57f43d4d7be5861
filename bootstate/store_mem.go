// SPDX-License-Identifier: Apache-2.0

package bootstate

import (
	"fmt"
	"io"
)

// MemStore is a Store in memory with a fixed size, like a partition: for
// tests, and for a boot without a bootstate partition, where counting
// cannot survive the boot.
type MemStore struct {
	b []byte
}

// NewMemStore returns a zero-filled store of size bytes.
func NewMemStore(size int) *MemStore { return &MemStore{b: make([]byte, size)} }

// Bytes returns the store's content (not a copy).
func (m *MemStore) Bytes() []byte { return m.b }

// Clone returns an independent copy of the store.
func (m *MemStore) Clone() *MemStore { return &MemStore{b: append([]byte(nil), m.b...)} }

// ReadAt reads like a partition: io.EOF past the end.
func (m *MemStore) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("memory store: read at negative offset %d", off)
	}
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes like a partition: nothing is written past the end.
func (m *MemStore) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.b)) || int64(len(p)) > int64(len(m.b))-off {
		return 0, fmt.Errorf("memory store: write of %d bytes at %d past the end (%d bytes)", len(p), off, len(m.b))
	}
	return copy(m.b[off:], p), nil
}

// Sync does nothing: memory is as durable as it gets.
func (m *MemStore) Sync() error { return nil }
