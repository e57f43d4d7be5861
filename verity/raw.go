// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"fmt"
	"io"
	"os"
)

// ReadPath reads, from the devices under t and not through dm-verity, what
// verifying data block 0 reads: that block, and the hash block of each
// level on its path to the root. When dm-verity's first read fails with
// EIO, this tells a device that cannot be read (an error here: the disk,
// not the image) from blocks that read fine and do not match the root hash
// (nil: the image). It reads a few blocks only.
func ReadPath(t Target) error {
	p := t.Params.WithDefaults()
	g, err := p.geometry()
	if err != nil {
		return fmt.Errorf("dm-verity %s: %w", t.Name, err)
	}
	if err := readBlocks(t.DataDev, int(p.DataBlockSize), []int64{0}); err != nil {
		return err
	}
	start := hashStartBlock(t.HashOffset, p.HashBlockSize)
	var offs []int64
	for i := range g.levels {
		offs = append(offs, int64(start+g.levelStart(i))*int64(g.hbs))
	}
	return readBlocks(t.HashDev, g.hbs, offs)
}

// readBlocks reads n bytes of dev at each of offs.
func readBlocks(dev string, n int, offs []int64) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, n)
	for _, off := range offs {
		if _, err := f.ReadAt(b, off); err != nil {
			return fmt.Errorf("reading %d bytes of %s at byte %d: %w", n, dev, off, unwrapPath(err))
		}
	}
	return nil
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
