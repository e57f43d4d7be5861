// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// ErrNoGPT is returned by ReadGPT when no GPT header signature is found, as
// opposed to a GPT that is present but damaged.
var ErrNoGPT = errors.New("no GPT header")

// Limits that keep a damaged or hostile header from making us allocate or
// read without bound: the UEFI minimum array is 128 entries of 128 bytes.
// The entry array's limit is the kernel's own (block/partitions/efi.c
// refuses an array larger than KMALLOC_MAX_SIZE, 4 MiB on x86-64 and
// arm64 with 4 KiB pages): a table the kernel made partitions from is one
// keel reads too, so a partition's GPT name decides its PARTLABEL there
// and not the kernel's squashed PARTNAME (match.go, partLabel).
const (
	gptMaxEntryBytes = 4 << 20
	gptMinEntrySize  = 128
	gptHeaderMinSize = 92
	gptMaxLBA        = 1 << 48 // far past any disk; keeps LBA*sector from overflowing
)

// gptSectorSizes are tried in order: virtio and most disks use 512-byte
// logical sectors, 4Kn disks put the header at byte 4096.
var gptSectorSizes = [...]int64{512, 4096}

// Partition is one used GPT entry.
type Partition struct {
	Index    int    // 1-based position in the entry array; the kernel's PARTN
	Type     string // partition type GUID, lowercase canonical
	UUID     string // unique partition GUID (PARTUUID), lowercase canonical
	Name     string // partition name (PARTLABEL), decoded from UTF-16LE
	FirstLBA uint64
	LastLBA  uint64
}

// gptHeader holds the fields of the header we use.
type gptHeader struct {
	sector     int64
	altLBA     uint64 // the other header's LBA: the backup's, or the primary's (1)
	diskGUID   [16]byte
	entriesLBA uint64
	numEntries uint32
	entrySize  uint32
	entriesCRC uint32
}

// GPT is a disk's GUID partition table as ReadDiskGPT read it.
type GPT struct {
	Parts  []Partition
	Sector int64 // the logical sector size the header was found at: the unit of the LBAs
	// Damage says why the primary table (the header at LBA 1 and its entry
	// array) was not used when the table was read from the backup header at
	// the disk's last LBA, BackupLBA: a checksum mismatch, a read error, or
	// no header at all behind a protective MBR. It is nil for a sound primary.
	Damage    error
	BackupLBA uint64
}

// ReadGPT reads a disk's partitions from its GPT (ReadDiskGPT).
func ReadGPT(r io.ReaderAt) ([]Partition, error) {
	g, err := ReadDiskGPT(r)
	return g.Parts, err
}

// ReadDiskGPT reads the GPT of a disk: the header at LBA 1, validated by
// signature, CRC32 and its own LBA, and the entry array, validated by its
// CRC32. When that primary is damaged or missing, the backup is read the
// same way, as the kernel does only when booted with "gpt" — but only when
// sector 0 says the disk is GPT (a protective MBR) or cannot be read (a bad
// 4 KiB physical sector takes LBAs 0 to 7 of a 512e disk together): a GPT
// backup left at the end of a disk by an earlier layout (an MBR or a file
// system written over a GPT disk) is stale. The backup header is looked for
// where a primary whose own header is sound says it is (a disk grown since),
// then at the last LBA; it must point back at LBA 1, and carry the primary's
// disk GUID whenever LBA 1 still holds a header to compare with, so that a
// table left at the end of a disk imaged anew is not taken for this one's.
// GPT.Damage then says what was wrong with the primary. r's size comes from a
// Size method or io.Seeker; without either only the primary is read. It
// returns ErrNoGPT when there is no header.
func ReadDiskGPT(r io.ReaderAt) (GPT, error) {
	var errs []error
	for _, sector := range gptSectorSizes {
		h, parts, err := readGPTAt(r, sector, 1)
		if err == nil {
			return GPT{Parts: parts, Sector: sector}, nil
		}
		missing := errors.Is(err, ErrNoGPT)
		if !missing {
			errs = append(errs, err)
		}
		if !sector0AllowsBackup(r) {
			continue
		}
		g, berr := readBackupGPT(r, sector, h)
		if berr == nil {
			if missing {
				err = fmt.Errorf("no GPT header at byte %d", sector)
			}
			g.Damage = err
			return g, nil
		}
		if !errors.Is(berr, ErrNoGPT) {
			// %v: the backup's error must not make the primary's read as
			// "no GPT" (and the disk as MBR).
			errs = append(errs, fmt.Errorf("the backup GPT: %v", berr))
		}
	}
	if len(errs) > 0 {
		return GPT{}, joinErrs(errs)
	}
	return GPT{}, ErrNoGPT
}

// readBackupGPT reads the backup header and its entries: where primary (a
// sound header whose entries were not) says it is, else at the last LBA.
func readBackupGPT(r io.ReaderAt, sector int64, primary gptHeader) (GPT, error) {
	size, ok := readerSize(r)
	if !ok || size/sector < 3 {
		return GPT{}, ErrNoGPT
	}
	last := uint64(size/sector - 1)
	lbas := []uint64{last}
	if alt := primary.altLBA; primary.sector != 0 && alt > 1 && alt < last {
		lbas = []uint64{alt, last}
	}
	guid, compare := primaryGUID(r, sector, primary)
	var errs []error
	for _, lba := range lbas {
		h, parts, err := readGPTAt(r, sector, lba)
		at := int64(lba) * sector
		switch {
		case errors.Is(err, ErrNoGPT):
			continue
		case err != nil:
		case h.altLBA != 1:
			err = fmt.Errorf("GPT header at byte %d: says its primary is at LBA %d, want 1", at, h.altLBA)
		case compare && h.diskGUID != guid:
			err = fmt.Errorf("GPT header at byte %d: disk GUID %s, but LBA 1's is %s: it belongs to another table (a layout of before)",
				at, formatGUID(h.diskGUID[:]), formatGUID(guid[:]))
		default:
			return GPT{Parts: parts, Sector: sector, BackupLBA: lba}, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return GPT{}, ErrNoGPT
	}
	return GPT{}, joinErrs(errs)
}

// primaryGUID is the disk GUID of the header at LBA 1: primary's when its
// header is sound, else read from a damaged one that still has its
// signature. ok is false when LBA 1 holds no header to compare with.
func primaryGUID(r io.ReaderAt, sector int64, primary gptHeader) (guid [16]byte, ok bool) {
	if primary.sector != 0 {
		return primary.diskGUID, true
	}
	buf := make([]byte, gptHeaderMinSize)
	if readFull(r, buf, sector) != nil || string(buf[:8]) != "EFI PART" {
		return guid, false
	}
	copy(guid[:], buf[56:72])
	return guid, true
}

// joinErrs is errs on one line, each still matched by errors.Is and As
// (errors.Join puts them on lines of their own).
func joinErrs(errs []error) error {
	err := errs[0]
	for _, e := range errs[1:] {
		err = fmt.Errorf("%w; %w", err, e)
	}
	return err
}

// readerSize is r's size in bytes, when r can tell it.
func readerSize(r io.ReaderAt) (int64, bool) {
	switch s := r.(type) {
	case interface{ Size() int64 }:
		return s.Size(), true
	case io.Seeker:
		n, err := s.Seek(0, io.SeekEnd) // a block device's size; ReadAt ignores the offset
		return n, err == nil
	}
	return 0, false
}

// sector0AllowsBackup reports whether sector 0 lets the backup GPT be read:
// it holds an MBR with a protective entry (type 0xee), as a GPT disk's
// does, or it cannot be read at all.
func sector0AllowsBackup(r io.ReaderAt) bool {
	pmbr, err := hasProtectiveMBR(r)
	return pmbr || err != nil
}

// hasProtectiveMBR reports whether sector 0 holds an MBR with a GPT
// protective entry; err is a read error.
func hasProtectiveMBR(r io.ReaderAt) (bool, error) {
	_, entries, err := readMBRSector(r, 0, mbrSector, true)
	if errors.Is(err, ErrNoMBR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.typ == mbrProtective {
			return true, nil
		}
	}
	return false, nil
}

// readGPTAt reads the header at lba and its entry array. h is the header
// whenever it is sound, even when the entries are not.
func readGPTAt(r io.ReaderAt, sector int64, lba uint64) (h gptHeader, parts []Partition, err error) {
	h, err = readGPTHeader(r, sector, lba)
	if err != nil {
		return gptHeader{}, nil, err
	}
	parts, err = readGPTEntries(r, h)
	return h, parts, err
}

func readGPTHeader(r io.ReaderAt, sector int64, lba uint64) (gptHeader, error) {
	buf := make([]byte, sector)
	at := int64(lba) * sector
	if err := readFull(r, buf, at); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return gptHeader{}, ErrNoGPT
		}
		return gptHeader{}, fmt.Errorf("GPT header at byte %d: %w", at, err)
	}
	if string(buf[:8]) != "EFI PART" {
		return gptHeader{}, ErrNoGPT
	}
	size := binary.LittleEndian.Uint32(buf[12:])
	if size < gptHeaderMinSize || int64(size) > sector {
		return gptHeader{}, fmt.Errorf("GPT header at byte %d: header size %d, want %d..%d", at, size, gptHeaderMinSize, sector)
	}
	stored := binary.LittleEndian.Uint32(buf[16:])
	hdr := bytes.Clone(buf[:size])
	clear(hdr[16:20]) // the CRC is computed with its own field zeroed
	if got := crc32.ChecksumIEEE(hdr); got != stored {
		return gptHeader{}, fmt.Errorf("GPT header at byte %d: checksum mismatch: stored %08x, computed %08x", at, stored, got)
	}
	if my := binary.LittleEndian.Uint64(buf[24:]); my != lba {
		return gptHeader{}, fmt.Errorf("GPT header at byte %d: says it is at LBA %d, want %d", at, my, lba)
	}
	h := gptHeader{
		sector:     sector,
		altLBA:     binary.LittleEndian.Uint64(buf[32:]),
		entriesLBA: binary.LittleEndian.Uint64(buf[72:]),
		numEntries: binary.LittleEndian.Uint32(buf[80:]),
		entrySize:  binary.LittleEndian.Uint32(buf[84:]),
		entriesCRC: binary.LittleEndian.Uint32(buf[88:]),
	}
	copy(h.diskGUID[:], buf[56:72])
	if err := h.check(); err != nil {
		return gptHeader{}, err
	}
	return h, nil
}

// check validates the entry array geometry before anything is allocated.
func (h gptHeader) check() error {
	if h.entrySize < gptMinEntrySize || h.entrySize%8 != 0 {
		return fmt.Errorf("GPT: entry size %d, want a multiple of 8, at least %d", h.entrySize, gptMinEntrySize)
	}
	if total := uint64(h.numEntries) * uint64(h.entrySize); total > gptMaxEntryBytes {
		return fmt.Errorf("GPT: %d entries of %d bytes, want at most %d bytes", h.numEntries, h.entrySize, gptMaxEntryBytes)
	}
	if h.entriesLBA < 2 || h.entriesLBA > gptMaxLBA {
		return fmt.Errorf("GPT: entry array at LBA %d, want 2..%d", h.entriesLBA, uint64(gptMaxLBA))
	}
	return nil
}

func readGPTEntries(r io.ReaderAt, h gptHeader) ([]Partition, error) {
	buf := make([]byte, int(h.numEntries)*int(h.entrySize))
	off := int64(h.entriesLBA) * h.sector
	if err := readFull(r, buf, off); err != nil {
		return nil, fmt.Errorf("GPT entry array at byte %d (%d bytes): %w", off, len(buf), err)
	}
	if got := crc32.ChecksumIEEE(buf); got != h.entriesCRC {
		return nil, fmt.Errorf("GPT entry array: checksum mismatch: stored %08x, computed %08x", h.entriesCRC, got)
	}
	var parts []Partition
	for i := 0; i < int(h.numEntries); i++ {
		e := buf[i*int(h.entrySize):][:gptMinEntrySize]
		if allZero(e[:16]) { // unused entry: zero type GUID
			continue
		}
		parts = append(parts, Partition{
			Index:    i + 1,
			Type:     formatGUID(e[0:16]),
			UUID:     formatGUID(e[16:32]),
			FirstLBA: binary.LittleEndian.Uint64(e[32:]),
			LastLBA:  binary.LittleEndian.Uint64(e[40:]),
			Name:     decodeUTF16LE(e[56:128]),
		})
	}
	return parts, nil
}

// formatGUID formats a GUID as GPT stores it: the first three groups are
// little-endian, the last two are bytes in order.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

// decodeUTF16LE decodes a NUL-terminated (or full) UTF-16LE name.
func decodeUTF16LE(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u)) // unpaired surrogates become U+FFFD
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readFull reads len(buf) bytes at off; a short read is io.ErrUnexpectedEOF
// so callers can tell "too small to hold this" from an I/O error.
func readFull(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
