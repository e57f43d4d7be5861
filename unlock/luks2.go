// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The LUKS2 binary header, as the LUKS2 On-Disk Format Specification lays
// it out: every header area (hdr_size bytes) starts with these 4096 bytes
// and goes on with the JSON area.
const (
	binHeaderSize = 4096
	// Byte offsets of the fields keel reads.
	offVersion   = 6
	offHdrSize   = 8
	offSeqID     = 16
	offCsumAlg   = 72
	lenCsumAlg   = 32
	offUUID      = 168
	lenUUID      = 40
	offHdrOffset = 256
	offCsum      = 448
	lenCsum      = 64

	// secondaryMagic starts the second copy of the header.
	secondaryMagic = "SKUL\xba\xbe"

	minHdrSize = 16 << 10
	maxHdrSize = 4 << 20
)

// header is one checked copy of the LUKS2 header.
type header struct {
	offset  uint64 // where the copy starts on the device
	hdrSize uint64 // binary header and JSON area
	seqID   uint64
	uuid    string
	meta    *metadata
}

// readLUKS2 reads both copies of the LUKS2 header from r, a device of
// size bytes, and returns the valid one, or the newer (higher seqid) when
// both are valid. The primary copy is at byte 0; the secondary follows it
// at hdr_size, or, when the primary is too damaged to tell its size, at
// one of the offsets the specification allows (16 KiB to 4 MiB).
func readLUKS2(r io.ReaderAt, size int64) (*header, error) {
	var primary *header
	first := make([]byte, 8)
	_, perr := r.ReadAt(first, 0)
	if perr != nil {
		// An unreadable first sector (a bad block) leaves the secondary,
		// as cryptsetup uses it; this gave up (found by a hunting helper).
		perr = fmt.Errorf("reading it: %w", eofIsShort(perr))
	} else {
		if v, err := Version(first); err == nil && v != 2 {
			// LUKS1 headers have no checksum: a damaged iteration count
			// could make unlocking run for hours instead of failing.
			return nil, fmt.Errorf("LUKS%d is not supported, expected LUKS2 (cryptsetup convert --type luks2 converts it)", v)
		}
		primary, perr = readCopy(r, size, 0)
	}
	var secondary *header
	var serrs []string
	if primary != nil {
		// A valid primary says where its secondary is; copies elsewhere
		// are stale leftovers of an older format.
		h, err := readCopy(r, size, primary.hdrSize)
		if err != nil {
			return primary, nil
		}
		secondary = h
	} else {
		// The primary's hdr_size cannot be trusted: look where the
		// specification allows the secondary to be.
		for at := uint64(minHdrSize); at <= maxHdrSize && secondary == nil; at *= 2 {
			if size < binHeaderSize || at > uint64(size)-binHeaderSize {
				break // past the end of the device
			}
			h, err := readCopy(r, size, at)
			if err != nil {
				if !errors.Is(err, errNoMagic) {
					serrs = append(serrs, fmt.Sprintf("secondary header at byte %d: %v", at, err))
				}
				continue
			}
			secondary = h
		}
	}
	switch {
	case primary != nil && secondary != nil:
		if secondary.seqID > primary.seqID {
			return secondary, nil
		}
		return primary, nil
	case secondary != nil:
		return secondary, nil
	}
	if len(serrs) == 0 {
		serrs = append(serrs, fmt.Sprintf("no secondary header at any of bytes %d to %d", minHdrSize, maxHdrSize))
	}
	return nil, fmt.Errorf("no valid LUKS2 header: primary header at byte 0: %v; %s", perr, strings.Join(serrs, "; "))
}

var errNoMagic = errors.New("no LUKS2 header magic")

// readCopy reads and checks the copy of the header at byte at of r.
func readCopy(r io.ReaderAt, size int64, at uint64) (*header, error) {
	magic := Magic
	if at != 0 {
		magic = secondaryMagic
	}
	if size < 0 || at > uint64(size) || uint64(size)-at < binHeaderSize {
		return nil, fmt.Errorf("the device (%d bytes) ends before the header's %d bytes", size, binHeaderSize)
	}
	bin := make([]byte, binHeaderSize)
	if _, err := r.ReadAt(bin, int64(at)); err != nil {
		return nil, eofIsShort(err)
	}
	h, err := parseBinHeader(bin, magic, at)
	if err != nil {
		return nil, err
	}
	if uint64(size)-at < h.hdrSize {
		return nil, fmt.Errorf("the device (%d bytes) ends before the header's %d bytes", size, h.hdrSize)
	}
	area := make([]byte, h.hdrSize)
	copy(area, bin)
	if _, err := r.ReadAt(area[binHeaderSize:], int64(at)+binHeaderSize); err != nil {
		return nil, eofIsShort(err)
	}
	if err := checkSum(area); err != nil {
		return nil, err
	}
	js := area[binHeaderSize:]
	end := bytes.IndexByte(js, 0)
	if end < 0 {
		return nil, fmt.Errorf("the JSON area (%d bytes) has no terminating NUL", len(js))
	}
	h.meta, err = parseMetadata(js[:end], h.hdrSize)
	if err != nil {
		return nil, fmt.Errorf("JSON metadata: %w", err)
	}
	return h, nil
}

// parseBinHeader checks the binary header bin of the copy at byte at.
func parseBinHeader(bin []byte, magic string, at uint64) (*header, error) {
	if len(bin) < binHeaderSize {
		return nil, fmt.Errorf("binary header is %d bytes, expected %d", len(bin), binHeaderSize)
	}
	if string(bin[:6]) != magic {
		return nil, fmt.Errorf("%w: expected %q, found %q", errNoMagic, magic, bin[:6])
	}
	if v := binary.BigEndian.Uint16(bin[offVersion:]); v != 2 {
		return nil, fmt.Errorf("version %d, expected 2", v)
	}
	h := &header{
		offset:  at,
		hdrSize: binary.BigEndian.Uint64(bin[offHdrSize:]),
		seqID:   binary.BigEndian.Uint64(bin[offSeqID:]),
		uuid:    cString(bin[offUUID : offUUID+lenUUID]),
	}
	if !validHdrSize(h.hdrSize) {
		return nil, fmt.Errorf("hdr_size %d, expected a power of two from %d to %d", h.hdrSize, minHdrSize, maxHdrSize)
	}
	if o := binary.BigEndian.Uint64(bin[offHdrOffset:]); o != at {
		return nil, fmt.Errorf("hdr_offset %d, expected %d, where this copy is", o, at)
	}
	if at != 0 && h.hdrSize != at {
		return nil, fmt.Errorf("hdr_size %d, expected %d: the secondary header follows the primary", h.hdrSize, at)
	}
	if alg := cString(bin[offCsumAlg : offCsumAlg+lenCsumAlg]); alg != "sha256" {
		return nil, fmt.Errorf("checksum algorithm %q is not supported, expected sha256", clip(alg))
	}
	return h, nil
}

func validHdrSize(s uint64) bool {
	return s >= minHdrSize && s <= maxHdrSize && s&(s-1) == 0
}

// checkSum checks the SHA-256 over the header area, binary header and
// JSON area, taken with the checksum field zeroed.
func checkSum(area []byte) error {
	var want [sha256.Size]byte
	copy(want[:], area[offCsum:])
	h := sha256.New()
	h.Write(area[:offCsum])
	h.Write(make([]byte, lenCsum))
	h.Write(area[offCsum+lenCsum:])
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		return fmt.Errorf("checksum mismatch: the header area hashes to %x, the header says %x", got[:8], want[:8])
	}
	return nil
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// eofIsShort names a read past the end of a device.
func eofIsShort(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the device ends inside the header")
	}
	return err
}
