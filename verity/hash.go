// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// chunkSize is what one worker reads at a time: big reads keep the device
// streaming while the other workers hash.
const chunkSize = 1 << 20

// blockSource is a run of n equal blocks of size bs at byte off of r; name
// says what they are in errors ("data", "level 0").
type blockSource struct {
	r    io.ReaderAt
	name string
	off  int64
	n    uint64
	bs   int
}

// hashBlocks writes the salted digest of every block of src into dst at the
// slot the tree keeps for it: g.perBlock digests per hash block, g.stride
// bytes apart, the rest of each hash block left as it is (zero). The blocks
// are split into chunks hashed by GOMAXPROCS workers.
func (g geometry) hashBlocks(src blockSource, dst []byte) error {
	perChunk := uint64(max(chunkSize/src.bs, 1))
	chunks := (src.n + perChunk - 1) / perChunk
	workers := int(min(uint64(runtime.GOMAXPROCS(0)), chunks))
	var next atomic.Uint64
	var stop atomic.Bool
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			errs[w] = g.hashWorker(src, perChunk, dst, &next, &stop)
			if errs[w] != nil {
				stop.Store(true)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// hashWorker hashes chunks, taking the next free one each time, until none
// is left or another worker failed.
func (g geometry) hashWorker(src blockSource, perChunk uint64, dst []byte, next *atomic.Uint64, stop *atomic.Bool) error {
	buf := make([]byte, perChunk*uint64(src.bs))
	h := g.alg.new()
	for !stop.Load() {
		first := (next.Add(1) - 1) * perChunk
		if first >= src.n {
			return nil
		}
		count := min(perChunk, src.n-first)
		b := buf[:count*uint64(src.bs)]
		if err := src.read(b, first); err != nil {
			return err
		}
		for i := range count {
			blk := b[i*uint64(src.bs) : (i+1)*uint64(src.bs)]
			g.digest(h, blk, dst[g.slot(first+i):])
		}
	}
	return nil
}

// read fills b with the blocks from first on.
func (s blockSource) read(b []byte, first uint64) error {
	off := s.off + int64(first)*int64(s.bs)
	n, err := s.r.ReadAt(b, off)
	if n == len(b) {
		return nil // io.ReaderAt may report io.EOF with a full read
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	last := first + uint64(len(b)/s.bs) - 1
	return fmt.Errorf("verity: reading %s blocks %d-%d (bytes %d-%d): got %d bytes: %w",
		s.name, first, last, off, off+int64(len(b)), n, err)
}

// digest writes hash(salt || block) to the start of dst, as format version 1
// does (cryptsetup verify_hash_block), without allocating.
func (g geometry) digest(h hash.Hash, block, dst []byte) {
	h.Reset()
	h.Write(g.salt)
	h.Write(block)
	h.Sum(dst[:0])
}

// slot is the offset, within a level, of the digest of child block i.
func (g geometry) slot(i uint64) uint64 {
	p := uint64(g.perBlock)
	return i/p*uint64(g.hbs) + i%p*uint64(g.stride)
}
