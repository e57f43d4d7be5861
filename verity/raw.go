// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"fmt"
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
