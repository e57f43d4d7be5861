// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"fmt"
	"os"
	"strings"
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
// read through the mapped device fails with EIO later than the first read
// and a hash mismatch could be the cause (MismatchIsEIO), this tells a disk
// that cannot be read (an error) from one that reads fine (nil). It reads
// the whole image, in large chunks, and is meant for that failure path only.
func ReadAll(t Target) error {
	p := t.Params.WithDefaults()
	g, err := p.geometry()
	if err != nil {
		return fmt.Errorf("dm-verity %s: %w", t.Name, err)
	}
	start := int64(hashStartBlock(t.HashOffset, p.HashBlockSize)) * int64(g.hbs)
	if err := readRange(t.DataDev, 0, int64(p.DataBlocks)*int64(g.dbs)); err != nil {
		return err
	}
	return readRange(t.HashDev, start, int64(g.treeBlocks())*int64(g.hbs))
}

// readRange reads n bytes of dev from off on, 1 MiB at a time.
func readRange(dev string, off, n int64) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1<<20)
	for end := off + n; off < end; {
		c := b[:min(int64(len(b)), end-off)]
		if _, err := f.ReadAt(c, off); err != nil {
			return fmt.Errorf("reading %d bytes of %s at byte %d: %w", len(c), dev, off, unwrapPath(err))
		}
		off += int64(len(c))
	}
	return nil
}

// MismatchIsEIO reports whether, under t's options, a block that does not
// match its hash reads as EIO from the mapped device. With
// restart_on_corruption (the default) or panic_on_corruption a mismatch
// restarts or stops the machine instead, and with ignore_corruption it reads
// as data: an EIO then comes from a device under dm-verity (dm-verity passes
// the I/O errors of its data and hash devices through).
func (t Target) MismatchIsEIO() bool {
	opts := t.Options
	if opts == nil {
		opts = DefaultOptions()
	}
	for _, o := range opts {
		for _, w := range strings.Fields(o) {
			switch w {
			case "restart_on_corruption", "panic_on_corruption", "ignore_corruption":
				return false
			}
		}
	}
	return true
}
