// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// CheckPath reads, from the devices under t and not through dm-verity, what
// verifying the first page of data reads (its data blocks, and the hash
// blocks on their paths to the root) and checks each against the level
// above and the top against t.RootHash, as dm-verity's first read does: it
// reads a page through the page cache, every data block in it checked.
// When that read fails with EIO, this tells apart a device that cannot be
// read (an error that does not wrap ErrMismatch: the disk), blocks that
// read and do not match (an error wrapping ErrMismatch: the image), and
// blocks that read and match (nil: the EIO was not the image's, but a disk
// error that did not come back, or the device-mapper's). It reads a few
// blocks.
func CheckPath(t Target) error { return checkFirst(t, os.Getpagesize()) }

// checkFirst is CheckPath for the data blocks in the first span bytes (one
// at least).
func checkFirst(t Target, span int) error {
	p := t.Params.WithDefaults()
	g, err := p.geometry()
	if err != nil {
		return fmt.Errorf("dm-verity %s: %w", t.Name, err)
	}
	n := min(uint64(max(span/g.dbs, 1)), p.DataBlocks)
	for i := range n {
		if err := g.checkBlock(t, hashStartBlock(t.HashOffset, p.HashBlockSize), i); err != nil {
			return err
		}
	}
	return nil
}

// checkBlock checks data block i up its path in the tree, which starts at
// hash block start of t.HashDev, to the root hash.
func (g geometry) checkBlock(t Target, start, i uint64) error {
	child, err := readBlock(t.DataDev, g.dbs, int64(i)*int64(g.dbs))
	if err != nil {
		return err
	}
	h, sum := g.alg.new(), make([]byte, 0, g.alg.size)
	what := fmt.Sprintf("data block %d (%s byte %d)", i, t.DataDev, int64(i)*int64(g.dbs))
	for lvl := range g.levels {
		parent := i / uint64(g.perBlock)
		off := int64(start+g.levelStart(lvl)+parent) * int64(g.hbs)
		blk, err := readBlock(t.HashDev, g.hbs, off)
		if err != nil {
			return err
		}
		g.digest(h, child, sum)
		at := int(i%uint64(g.perBlock)) * g.stride
		if want := blk[at : at+g.alg.size]; !bytes.Equal(sum[:g.alg.size], want) {
			return fmt.Errorf("verity: read directly, %s does not match level %d: %w (stored %s, computed %s)",
				what, lvl, ErrMismatch, short(want), short(sum[:g.alg.size]))
		}
		child, i, what = blk, parent, fmt.Sprintf("level %d hash block %d (%s byte %d)", lvl, parent, t.HashDev, off)
	}
	g.digest(h, child, sum)
	if got := sum[:g.alg.size]; !bytes.Equal(got, t.RootHash) {
		return fmt.Errorf("verity: read directly, %s hashes to %s, not the root hash %s: %w",
			what, short(got), short(t.RootHash), ErrMismatch)
	}
	return nil
}

// readBlock reads n bytes of dev at off.
func readBlock(dev string, n int, off int64) ([]byte, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("reading %d bytes of %s at byte %d: %w", n, dev, off, unwrapPath(err))
	}
	return b, nil
}

// ReadAll reads, from the devices under t and not through dm-verity, every
// block dm-verity may read: all data blocks and the whole hash tree. When a
// read of the image fails with EIO after the first read (dm-verity says EIO
// for a device's error, SquashFS for content it cannot decompress too),
// this tells a disk that cannot be read (an error) from one that reads fine
// (nil: the image). It reads the whole image in 1 MiB chunks, calling
// progress (if not nil) after each, and is meant for that failure path only.
func ReadAll(t Target, progress func()) error {
	p := t.Params.WithDefaults()
	g, err := p.geometry()
	if err != nil {
		return fmt.Errorf("dm-verity %s: %w", t.Name, err)
	}
	start := int64(hashStartBlock(t.HashOffset, p.HashBlockSize)) * int64(g.hbs)
	if err := readRange(t.DataDev, 0, int64(p.DataBlocks)*int64(g.dbs), progress); err != nil {
		return err
	}
	return readRange(t.HashDev, start, int64(g.treeBlocks())*int64(g.hbs), progress)
}

// ReadDevice reads all of dev, as ReadAll does, for an image mounted
// without dm-verity.
func ReadDevice(dev string, progress func()) error {
	return readRange(dev, 0, -1, progress)
}

// readRange reads n bytes of dev from off on (to its end when n < 0), 1 MiB
// at a time, calling progress after each.
func readRange(dev string, off, n int64, progress func()) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	if n < 0 {
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("finding the size of %s: %w", dev, err)
		}
		n = size - off
	}
	b := make([]byte, 1<<20)
	for end := off + n; off < end; {
		c := b[:min(int64(len(b)), end-off)]
		if _, err := f.ReadAt(c, off); err != nil {
			return fmt.Errorf("reading %d bytes of %s at byte %d: %w", len(c), dev, off, unwrapPath(err))
		}
		off += int64(len(c))
		if progress != nil {
			progress()
		}
	}
	return nil
}
