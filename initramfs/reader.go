// SPDX-License-Identifier: Apache-2.0

package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxNameSize bounds a record's name, like PATH_MAX: a header claiming more
// is corrupt, and refusing it keeps a lying header from costing memory.
const maxNameSize = 4096

// Reader reads the records of an uncompressed newc archive.
type Reader struct {
	r   *bufio.Reader
	off int64 // bytes consumed, for error messages and padding
}

// NewReader reads newc records from r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReader(r)} }

// Next returns the next record, or io.EOF after the last trailer. As the
// kernel does, it reads on after a trailer when another archive follows
// (zero padding between them skipped): mkinitrd's images are a
// precompressed archive holding /init followed by the rest.
func (rd *Reader) Next() (*Record, error) {
	for {
		rec, err := rd.record()
		if err != nil || rec.Name != Trailer {
			return rec, err
		}
		more, err := rd.nextArchive()
		if err != nil || !more {
			return nil, err
		}
	}
}

// record reads one record, the trailer included.
func (rd *Reader) record() (*Record, error) {
	at := rd.off
	var hdr [headerLen]byte
	if err := rd.read(hdr[:]); err != nil {
		return nil, fmt.Errorf("newc header at offset %d: %w", at, noEOF(err))
	}
	rec, nameSize, err := parseHeader(hdr[:])
	if err != nil {
		return nil, fmt.Errorf("newc header at offset %d: %w", at, err)
	}
	name := make([]byte, nameSize)
	if err := rd.read(name); err != nil {
		return nil, fmt.Errorf("newc name at offset %d: %w", at, noEOF(err))
	}
	if name[nameSize-1] != 0 {
		return nil, fmt.Errorf("newc name at offset %d: not NUL-terminated", at)
	}
	rec.Name = string(name[:nameSize-1])
	if err := rd.skipPad(); err != nil {
		return nil, fmt.Errorf("newc %s: %w", rec.Name, err)
	}
	if rec.Name == Trailer {
		return rec, nil
	}
	// ReadAll grows with the data actually present, so a header claiming
	// 4 GiB over a short file costs no more than the file.
	body, err := io.ReadAll(io.LimitReader(rd.r, int64(rec.bodyLength)))
	rd.off += int64(len(body))
	if err != nil {
		return nil, fmt.Errorf("newc %s: %w", rec.Name, err)
	}
	if len(body) != int(rec.bodyLength) {
		return nil, fmt.Errorf("newc %s: body truncated: header says %d bytes, found %d", rec.Name, rec.bodyLength, len(body))
	}
	rec.Body = body
	if err := rd.skipPad(); err != nil {
		return nil, fmt.Errorf("newc %s: %w", rec.Name, err)
	}
	return rec, nil
}

// ReadAll reads every record up to the trailer.
func ReadAll(r io.Reader) ([]*Record, error) {
	rd := NewReader(r)
	var recs []*Record
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
}

// parseHeader decodes the 13 hex fields after the magic.
func parseHeader(h []byte) (*Record, int, error) {
	if string(h[:6]) != Magic {
		return nil, 0, fmt.Errorf("magic %q, expected %q (newc)", h[:6], Magic)
	}
	var f [13]uint32
	for i := range f {
		field := h[6+8*i : 14+8*i]
		v, err := strconv.ParseUint(string(field), 16, 32)
		if err != nil {
			return nil, 0, fmt.Errorf("field %d: %q is not 8 hex digits", i, field)
		}
		f[i] = uint32(v)
	}
	nameSize := int(f[11])
	if nameSize < 1 || nameSize > maxNameSize {
		return nil, 0, fmt.Errorf("name size %d, expected 1..%d", nameSize, maxNameSize)
	}
	rec := &Record{
		Ino: f[0], Mode: f[1], UID: f[2], GID: f[3], Nlink: f[4], Mtime: f[5],
		bodyLength: f[6], RdevMajor: f[9], RdevMinor: f[10],
	}
	return rec, nameSize, nil
}

// nextArchive skips the zero padding after a trailer and reports whether
// another archive starts there (io.EOF when the stream ends). Like the
// kernel, it wants that archive 4-byte aligned and nothing but zeros or a
// newc header after a trailer.
func (rd *Reader) nextArchive() (bool, error) {
	for {
		b, err := rd.r.Peek(1)
		if errors.Is(err, io.EOF) {
			return false, io.EOF
		}
		if err != nil {
			return false, err
		}
		if b[0] != 0 {
			break
		}
		_, _ = rd.r.Discard(1)
		rd.off++
	}
	if rd.off%4 != 0 {
		return false, fmt.Errorf("archive after the trailer at offset %d is not 4-byte aligned", rd.off)
	}
	if head, err := rd.r.Peek(len(Magic)); err != nil || string(head) != Magic {
		return false, fmt.Errorf("junk after the trailer at offset %d: expected zero padding or another newc archive (%s)", rd.off, Magic)
	}
	return true, nil
}

func (rd *Reader) read(b []byte) error {
	n, err := io.ReadFull(rd.r, b)
	rd.off += int64(n)
	return err
}

// skipPad consumes the zero bytes up to the next multiple of 4.
func (rd *Reader) skipPad() error {
	var pad [3]byte
	n := pad4(int(rd.off%4)) - int(rd.off%4)
	if err := rd.read(pad[:n]); err != nil {
		return fmt.Errorf("padding at offset %d: %w", rd.off, noEOF(err))
	}
	return nil
}

// noEOF turns a bare EOF inside a record into ErrUnexpectedEOF: the archive
// ended without its trailer.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("archive ends before its trailer: %w", io.ErrUnexpectedEOF)
	}
	return err
}
