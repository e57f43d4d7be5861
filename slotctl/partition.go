// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/devices"
)

// partition is a byte range of an open file: a whole block device, a
// partition inside a disk image, or a plain file. Reads and writes are
// bounded by it so that nothing spills into the next partition.
type partition struct {
	label string // the GPT label it was found by, for messages
	path  string // what was opened
	f     *os.File
	off   int64
	size  int64
	// damage is why a disk image's primary GPT was not used (its backup
	// was): devices.GPT.Damage.
	damage error
}

// openPath opens a device or file as a whole partition. A regular file
// (a bootstate file in an image build) has no fixed end. A block device
// opened for writing is opened O_EXCL: the kernel refuses it (EBUSY) while
// it is mounted or mapped (dm-verity, dm-crypt), whatever slotctl's own
// checks concluded.
func openPath(label, path string, write bool) (*partition, error) {
	flag := openFlag(write)
	if write {
		flag |= unix.O_EXCL // ignored for regular files
	}
	f, err := os.OpenFile(path, flag, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("%s: %s is in use (mounted, or under a device-mapper device): refusing to write it: %w", label, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	p := &partition{label: label, path: path, f: f, size: math.MaxInt64}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		return p, nil
	}
	// Seek rather than Stat: a block device reports size 0 in Stat.
	if p.size, err = f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: size of %s: %w", label, path, err)
	}
	return p, nil
}

// openInDisk opens the partition labelled label inside a GPT disk image.
func openInDisk(disk, label string, write bool) (*partition, error) {
	f, err := os.OpenFile(disk, openFlag(write), 0)
	if err != nil {
		return nil, err
	}
	off, size, damage, err := findInGPT(f, label)
	if err == nil {
		// A table naming a range past the disk's end (a table copied from
		// a larger disk) would have writes extend an image file, or fail
		// half-way on a device.
		var end int64
		if end, err = f.Seek(0, io.SeekEnd); err == nil && off+size > end {
			err = fmt.Errorf("partition %s: bytes %d to %d, past the disk's end at %d", label, off, off+size, end)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", disk, err)
	}
	return &partition{label: label, path: disk, f: f, off: off, size: size, damage: damage}, nil
}

func openFlag(write bool) int {
	if write {
		return os.O_RDWR
	}
	return os.O_RDONLY
}

// findInGPT returns the byte range of the partition labelled label, and
// why the primary GPT was not used when the backup was.
func findInGPT(r io.ReaderAt, label string) (off, size int64, damage, err error) {
	g, err := devices.ReadDiskGPT(r)
	if err != nil {
		return 0, 0, nil, err
	}
	sector := g.Sector
	for _, p := range g.Parts {
		if p.Name != label {
			continue
		}
		if p.LastLBA < p.FirstLBA || p.LastLBA >= math.MaxInt64/uint64(sector) {
			return 0, 0, nil, fmt.Errorf("partition %s: LBAs %d to %d, expected first <= last", label, p.FirstLBA, p.LastLBA)
		}
		return int64(p.FirstLBA) * sector, int64(p.LastLBA-p.FirstLBA+1) * sector, g.Damage, nil
	}
	return 0, 0, nil, fmt.Errorf("no partition labelled %s in the GPT", label)
}

// String names the partition and where it is.
func (p *partition) String() string {
	if p.off == 0 && p.label == "" {
		return p.path
	}
	if p.off == 0 {
		return fmt.Sprintf("%s (%s)", p.label, p.path)
	}
	return fmt.Sprintf("%s (%s at byte %d)", p.label, p.path, p.off)
}

func (p *partition) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= p.size {
		return 0, io.EOF
	}
	short := false
	if int64(len(b)) > p.size-off {
		b, short = b[:p.size-off], true
	}
	n, err := p.f.ReadAt(b, p.off+off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

func (p *partition) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || int64(len(b)) > p.size-off {
		return 0, fmt.Errorf("%s: write of %d bytes at byte %d past the end of the partition (%d bytes)", p.label, len(b), off, p.size)
	}
	return p.f.WriteAt(b, p.off+off)
}

// Sync makes the writes durable; on a block device fsync also flushes the
// disk's write cache.
func (p *partition) Sync() error { return p.f.Sync() }

// dropCache evicts the partition's clean pages, so that reading back after
// Sync reads what is on the disk rather than what the page cache kept.
func (p *partition) dropCache(length int64) error {
	if err := p.evict(0, length); err != nil {
		return fmt.Errorf("%s: drop page cache: %w", p.label, err)
	}
	return nil
}

// DropCache is dropCache of n bytes at off, for bootstate.Save, which
// reads a record copy back from the disk with it.
func (p *partition) DropCache(off, n int64) { _ = p.evict(off, n) }

// evict drops the clean pages of n bytes at off in the partition, the
// range rounded out to whole pages of the device (a partition need not
// start on one, and fadvise drops whole pages only).
func (p *partition) evict(off, n int64) error {
	pg := int64(os.Getpagesize())
	start := (p.off + off) &^ (pg - 1)
	end := (p.off + off + n + pg - 1) &^ (pg - 1)
	return unix.Fadvise(int(p.f.Fd()), start, end-start, unix.FADV_DONTNEED)
}

func (p *partition) Close() error { return p.f.Close() }

// closeAll closes partitions that may be nil.
func closeAll(ps ...*partition) {
	for _, p := range ps {
		if p != nil {
			p.Close()
		}
	}
}
