// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrNoMBR is returned by ReadMBR when the first sector holds no DOS
// partition table: no 0x55AA signature, an entry whose boot flag is neither
// 0x00 nor 0x80 (a boot sector's code, not a table), a protective MBR (the
// disk is GPT), or no partition at all.
var ErrNoMBR = errors.New("no MBR partition table")

// MBR layout (the kernel's block/partitions/msdos.c): the disk signature
// at byte 440, four 16-byte entries from byte 446, 0x55AA at byte 510.
const (
	mbrSector     = 512
	mbrSigOffset  = 440
	mbrTable      = 446
	mbrEntrySize  = 16
	mbrProtective = 0xee
	// mbrMaxEBRs bounds the walk of the logical partitions' chain, which a
	// damaged or hostile disk can make endless; the kernel stops at 256
	// partitions too (DISK_MAX_PARTS).
	mbrMaxEBRs = 256
)

// mbrEntry is one partition table entry; start is relative to the sector
// that holds the table (or to the extended partition, for EBR links).
type mbrEntry struct {
	boot, typ     byte
	start, length uint32
}

// used is the kernel's test: any entry with a length is a partition,
// whatever its type (a sized entry of type 0 takes a number too).
func (e mbrEntry) used() bool     { return e.length != 0 }
func (e mbrEntry) extended() bool { return e.typ == 0x05 || e.typ == 0x0f || e.typ == 0x85 }

// ReadMBR reads a DOS (MBR) partition table as the kernel does
// (block/partitions/msdos.c): the primary entries are partitions 1 to 4 by
// position, logical partitions in the extended partition's chain of EBRs
// are numbered from 5. Each gets the kernel's PARTUUID, the disk signature
// and the partition number as "%08x-%02x"; Type is the system id in hex.
// LBAs count the disk's logical sectors, as the entries do: 4 KiB on a
// 4Kn disk (BLKSSZGET, mbrSectorSize), 512 bytes on a file or a 512e disk.
func ReadMBR(r io.ReaderAt) ([]Partition, error) {
	return readMBR(r, mbrSectorSize(r))
}

// mbrSectorSize is the logical sector size the entries of r's table count:
// the block device's (logicalBlockSize), else 512. The kernel reads the
// chain of logical partitions in those units too (msdos.c's sector_size):
// read in 512-byte units, a 4Kn disk's EBRs were looked for at an eighth
// of their place, and its logical partitions, root=PARTUUID=SSSSSSSS-05
// with them, were not found.
func mbrSectorSize(r io.ReaderAt) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return mbrSector
	}
	bs, err := logicalBlockSize(f)
	if err != nil || bs < mbrSector || bs > 64<<10 || bs&(bs-1) != 0 {
		return mbrSector // a file, or a size no disk has
	}
	return bs
}

func readMBR(r io.ReaderAt, sectorSize int64) ([]Partition, error) {
	sector, entries, err := readMBRSector(r, 0, sectorSize, true)
	if err != nil {
		return nil, err
	}
	sig := binary.LittleEndian.Uint32(sector[mbrSigOffset:])
	var parts []Partition
	for i, e := range entries {
		if e.typ == mbrProtective {
			return nil, fmt.Errorf("protective MBR (the disk is GPT): %w", ErrNoMBR)
		}
		if e.used() {
			parts = append(parts, mbrPartition(sig, i+1, 0, e))
		}
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("MBR with no partitions: %w", ErrNoMBR)
	}
	// Every extended primary's chain, in order, numbered on from 5 (the
	// kernel parses each one, not only the first).
	n := 5
	for _, e := range entries {
		if !e.used() || !e.extended() {
			continue
		}
		logical, err := readLogical(r, sectorSize, sig, uint64(e.start), uint64(e.length), &n)
		parts = append(parts, logical...)
		if err != nil {
			return parts, err
		}
	}
	return parts, nil
}

// readLogical walks the EBR chain of the extended partition starting at
// sector base: each EBR holds a logical partition (relative to the EBR) and
// a link to the next EBR (relative to base). A damaged link ends the walk
// with an error; the partitions found so far are returned.
//
// As the kernel (parse_extended): an EBR's boot flags are not checked, and
// its third and fourth entries, which sometimes hold garbage, count only
// when they lie inside both the EBR's region and the extended partition
// (base, size). n is the next partition number, shared by every chain.
func readLogical(r io.ReaderAt, sectorSize int64, sig uint32, base, size uint64, n *int) ([]Partition, error) {
	var parts []Partition
	seen := map[uint64]bool{}
	region := size // the current EBR's: the extended partition's, then each link's
	for cur := base; ; {
		if seen[cur] || len(seen) == mbrMaxEBRs {
			return parts, fmt.Errorf("MBR: logical partition chain loops or has more than %d links, stopped at sector %d", mbrMaxEBRs, cur)
		}
		seen[cur] = true
		_, entries, err := readMBRSector(r, cur, sectorSize, false)
		if err != nil {
			return parts, fmt.Errorf("MBR: logical partition table at sector %d: %w", cur, err)
		}
		var next *mbrEntry
		for i, e := range entries {
			start, length := uint64(e.start), uint64(e.length)
			switch {
			case !e.used():
			case e.extended():
				if next == nil {
					next = &entries[i]
				}
			case i >= 2 && (start+length > region || cur+start < base || cur+start+length > base+size):
			case *n > 255:
				return parts, fmt.Errorf("MBR: more than 255 partitions, stopped at sector %d", cur)
			default:
				parts = append(parts, mbrPartition(sig, *n, cur, e))
				*n++
			}
		}
		if next == nil {
			return parts, nil
		}
		cur, region = base+uint64(next.start), uint64(next.length)
	}
}

// readMBRSector reads the first 512 bytes of the sector at lba (of
// sectorSize bytes: the table is in them, whatever the sector size) and
// its four entries; checkBoot refuses a boot flag other than 0x00 and 0x80
// (the kernel's test of the first sector only).
func readMBRSector(r io.ReaderAt, lba uint64, sectorSize int64, checkBoot bool) ([]byte, [4]mbrEntry, error) {
	var entries [4]mbrEntry
	b := make([]byte, mbrSector)
	if lba > gptMaxLBA || lba > math.MaxInt64/uint64(sectorSize) {
		return nil, entries, fmt.Errorf("sector %d is past any disk: %w", lba, ErrNoMBR)
	}
	if err := readFull(r, b, int64(lba)*sectorSize); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, entries, ErrNoMBR
		}
		return nil, entries, fmt.Errorf("MBR at sector %d: %w", lba, err)
	}
	if b[510] != 0x55 || b[511] != 0xaa {
		return nil, entries, ErrNoMBR
	}
	for i := range entries {
		e := b[mbrTable+i*mbrEntrySize:][:mbrEntrySize]
		if checkBoot && e[0] != 0 && e[0] != 0x80 {
			return nil, entries, ErrNoMBR // boot code or a FAT boot sector, not a table
		}
		entries[i] = mbrEntry{boot: e[0], typ: e[4], start: binary.LittleEndian.Uint32(e[8:]), length: binary.LittleEndian.Uint32(e[12:])}
	}
	return b, entries, nil
}

func mbrPartition(sig uint32, n int, base uint64, e mbrEntry) Partition {
	first := base + uint64(e.start)
	return Partition{
		Index:    n,
		Type:     fmt.Sprintf("%02x", e.typ),
		UUID:     fmt.Sprintf("%08x-%02x", sig, n),
		FirstLBA: first,
		LastLBA:  first + uint64(e.length) - 1,
	}
}
