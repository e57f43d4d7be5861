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
	if err := readAt(t.DataDev, 0, int(p.DataBlockSize)); err != nil {
		return err
	}
	start := hashStartBlock(t.HashOffset, p.HashBlockSize)
	for i := range g.levels {
		if err := readAt(t.HashDev, int64(start+g.levelStart(i))*int64(g.hbs), g.hbs); err != nil {
			return err
		}
	}
	return nil
}

// readAt reads n bytes of dev at off.
func readAt(dev string, off int64, n int) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.ReadAt(make([]byte, n), off); err != nil {
		return fmt.Errorf("reading %d bytes of %s at byte %d: %w", n, dev, off, unwrapPath(err))
	}
	return nil
}
