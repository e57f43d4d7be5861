// SPDX-License-Identifier: Apache-2.0

package initramfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// Kind is the type of an archive entry.
type Kind int

// Entry kinds.
const (
	KindFile Kind = iota
	KindDir
	KindSymlink
	KindChar
	KindBlock
)

// Entry is the source of one archive path: a file on disk, bytes in memory,
// a directory, a symlink or a device node.
type Entry struct {
	Kind         Kind
	Perm         fs.FileMode // permission bits (and setuid/setgid/sticky)
	Data         []byte      // file body when FromPath is empty
	FromPath     string      // file read from disk when the archive is written
	Target       string      // symlink target
	Major, Minor uint32      // device number of a device node
}

// File is a regular file read from src when the archive is written.
func File(src string, perm fs.FileMode) Entry {
	return Entry{Kind: KindFile, FromPath: src, Perm: perm}
}

// Bytes is a regular file with the given contents.
func Bytes(b []byte, perm fs.FileMode) Entry { return Entry{Kind: KindFile, Data: b, Perm: perm} }

// Dir is a directory.
func Dir(perm fs.FileMode) Entry { return Entry{Kind: KindDir, Perm: perm} }

// Symlink is a symbolic link to target.
func Symlink(target string) Entry { return Entry{Kind: KindSymlink, Target: target, Perm: 0o777} }

// CharDev is a character device node.
func CharDev(major, minor uint32, perm fs.FileMode) Entry {
	return Entry{Kind: KindChar, Major: major, Minor: minor, Perm: perm}
}

// BlockDev is a block device node.
func BlockDev(major, minor uint32, perm fs.FileMode) Entry {
	return Entry{Kind: KindBlock, Major: major, Minor: minor, Perm: perm}
}

// Archive maps a path inside the initramfs to its source. Paths are stored
// clean and without a leading "/"; use Add to get that right.
type Archive map[string]Entry

// Add records e at name. Adding the same directory twice is fine; adding a
// different entry at a path already taken is an error, so two sources cannot
// silently fight over one path.
func (a Archive) Add(name string, e Entry) error {
	p, err := CleanPath(name)
	if err != nil {
		return err
	}
	if old, ok := a[p]; ok && !sameEntry(old, e) {
		return fmt.Errorf("initramfs: /%s added twice with different contents", p)
	}
	a[p] = e
	return nil
}

// CleanPath turns "/a/b/../c" into "a/c" and refuses paths that are empty or
// leave the archive root.
func CleanPath(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("initramfs: path %q contains a NUL byte", name)
	}
	raw := strings.TrimLeft(name, "/")
	for _, part := range strings.Split(raw, "/") {
		if part == ".." {
			return "", fmt.Errorf("initramfs: path %q leaves the archive root", name)
		}
	}
	p := path.Clean("/" + raw)[1:]
	if p == "" {
		return "", fmt.Errorf("initramfs: path %q names the archive root", name)
	}
	return p, nil
}

func sameEntry(a, b Entry) bool {
	if a.Kind == KindDir && b.Kind == KindDir {
		return true
	}
	return a.Kind == b.Kind && a.Perm == b.Perm && a.FromPath == b.FromPath &&
		string(a.Data) == string(b.Data) && a.Target == b.Target &&
		a.Major == b.Major && a.Minor == b.Minor
}

// WriteOptions control the bits of the archive that would otherwise vary.
type WriteOptions struct {
	// Mtime is stored in every header (0, or SOURCE_DATE_EPOCH).
	Mtime uint32
}

// Write writes the uncompressed newc archive to w: parents filled in,
// entries sorted by path, inode numbers in that order, then the trailer.
func (a Archive) Write(w io.Writer, opt WriteOptions) error {
	names, err := a.withParents()
	if err != nil {
		return err
	}
	for i, name := range names {
		rec, err := a.record(name, opt)
		if err != nil {
			return err
		}
		// Inode numbers only need to be unique; the kernel uses them to
		// find hard links, which this writer never makes (nlink 1).
		rec.Ino = uint32(i + 1)
		if err := writeRecord(w, rec); err != nil {
			return err
		}
	}
	return writeTrailer(w)
}

// withParents returns every path of the archive plus the directories leading
// to them, sorted. Sorting puts each directory before its contents since a
// path sorts before every path it prefixes.
func (a Archive) withParents() ([]string, error) {
	all := make(map[string]bool, len(a))
	for name := range a {
		all[name] = true
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if e, ok := a[dir]; ok && e.Kind != KindDir {
				return nil, fmt.Errorf("initramfs: /%s is needed as a directory for /%s but is not one", dir, name)
			}
			all[dir] = true
		}
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// record builds the header and body of one path.
func (a Archive) record(name string, opt WriteOptions) (*Record, error) {
	e, ok := a[name]
	if !ok {
		e = Dir(0o755) // a parent nobody added explicitly
	}
	r := &Record{Name: name, Nlink: 1, Mtime: opt.Mtime, Mode: permBits(e.Perm)}
	switch e.Kind {
	case KindFile:
		r.Mode |= TypeRegular
		body, err := e.body()
		if err != nil {
			return nil, fmt.Errorf("initramfs: /%s: %w", name, err)
		}
		r.Body = body
	case KindDir:
		r.Mode |= TypeDir
		r.Nlink = 2
	case KindSymlink:
		if e.Target == "" {
			return nil, fmt.Errorf("initramfs: /%s: symlink with an empty target", name)
		}
		r.Mode |= TypeSymlink
		r.Body = []byte(e.Target)
	case KindChar, KindBlock:
		r.Mode |= TypeChar
		if e.Kind == KindBlock {
			r.Mode = r.Mode&^TypeMask | TypeBlock
		}
		r.RdevMajor, r.RdevMinor = e.Major, e.Minor
	default:
		return nil, fmt.Errorf("initramfs: /%s: unknown entry kind %d", name, e.Kind)
	}
	return r, nil
}

func (e Entry) body() ([]byte, error) {
	if e.FromPath == "" {
		return e.Data, nil
	}
	fi, err := os.Stat(e.FromPath)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: is %v, expected a regular file", e.FromPath, fi.Mode().Type())
	}
	return os.ReadFile(e.FromPath)
}

// permBits converts Go's permission and special bits to the stat(2) layout.
func permBits(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}
