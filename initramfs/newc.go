// SPDX-License-Identifier: Apache-2.0

// Package initramfs writes and reads Linux initramfs images: newc ("070701")
// cpio archives, optionally compressed with zstd or gzip.
//
// The writer is deliberately small and byte-reproducible: entries are sorted
// by path, parent directories are filled in, owners are root, mtimes are
// fixed and inode numbers follow the sorted order. The format is described in
// the kernel's Documentation/driver-api/early-userspace/buffer-format.rst.
package initramfs

import (
	"fmt"
	"io"
)

// Magic starts every newc header.
const Magic = "070701"

// headerLen is the fixed part of a newc header: the magic and 13 fields of
// 8 hex digits.
const headerLen = 6 + 13*8

// Trailer names the last record of an archive.
const Trailer = "TRAILER!!!"

// File type bits of the mode field, as in <sys/stat.h>.
const (
	TypeMask    = 0o170000
	TypeRegular = 0o100000
	TypeDir     = 0o040000
	TypeSymlink = 0o120000
	TypeChar    = 0o020000
	TypeBlock   = 0o060000
)

// maxField is the largest value a header field can hold (8 hex digits).
const maxField = 1<<32 - 1

// Record is one newc entry as stored: a header and its body.
type Record struct {
	Name       string // path inside the archive, without a leading "/"
	Ino        uint32
	Mode       uint32 // type bits and permissions
	UID, GID   uint32
	Nlink      uint32
	Mtime      uint32
	RdevMajor  uint32 // device nodes only
	RdevMinor  uint32
	Body       []byte // file contents, or the symlink target
	bodyLength uint32 // size as stored in the header, used by the reader
}

// Type returns the file type bits of the record's mode.
func (r *Record) Type() uint32 { return r.Mode & TypeMask }

// writeRecord writes one header, name and body, each padded to 4 bytes.
func writeRecord(w io.Writer, r *Record) error {
	if uint64(len(r.Body)) > maxField {
		return fmt.Errorf("%s: %d bytes, newc holds at most %d", r.Name, len(r.Body), uint64(maxField))
	}
	nameSize := len(r.Name) + 1
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		Magic, r.Ino, r.Mode, r.UID, r.GID, r.Nlink, r.Mtime, len(r.Body),
		0, 0, r.RdevMajor, r.RdevMinor, nameSize, 0)
	buf := make([]byte, 0, pad4(headerLen+nameSize))
	buf = append(buf, hdr...)
	buf = append(buf, r.Name...)
	buf = append(buf, 0)
	buf = buf[:pad4(len(buf))]
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	if _, err := w.Write(r.Body); err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	var zeros [3]byte
	if _, err := w.Write(zeros[:pad4(len(r.Body))-len(r.Body)]); err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	return nil
}

// writeTrailer ends an archive. nlink 1 matches GNU cpio's trailer.
func writeTrailer(w io.Writer) error {
	return writeRecord(w, &Record{Name: Trailer, Nlink: 1})
}

// pad4 rounds n up to a multiple of 4.
func pad4(n int) int { return (n + 3) &^ 3 }
