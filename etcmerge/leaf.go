// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// leaf merges one local non-directory entry rel; ensure makes its parent
// directory in the output.
func (m *merger) leaf(rel string, l entry, opaque bool, ensure func() error) error {
	switch {
	case l.kind == Other:
		m.r.Skipped = append(m.r.Skipped, "/etc/"+rel+": a "+l.kind.String()+" is never carried")
		return m.drop(rel)
	case strings.HasSuffix(rel, KeepSuffix): // an in-place copy is gone already (children)
		m.r.Skipped = append(m.r.Skipped, "/etc/"+rel+": an earlier merge's copy, made again if still in conflict")
		return nil
	}
	b, n, err := m.others(rel)
	if err != nil {
		return err
	}
	var data []byte // the local content when it is not in the upper file
	if l.metacopy() {
		if b.kind != File {
			m.r.Skipped = append(m.r.Skipped, "/etc/"+rel+": a metadata-only copy-up whose data (the old image) is not available")
			return m.drop(rel)
		}
		if data, err = b.content(); err != nil {
			return err
		}
	}
	if alwaysCarried(rel) || m.noBase || opaque {
		return m.carry(rel, l, b, n, data, ensure)
	}
	same, err := l.sameMeta(b) // a metacopy's data is the base's
	if err == nil && same && data == nil {
		same, err = l.sameData(b)
	}
	if err != nil {
		return err
	}
	if same {
		m.r.Same++
		return m.drop(rel)
	}
	return m.carry(rel, l, b, n, data, ensure)
}

// carry writes the local entry and reports a conflict when the new image
// changed the same path too.
func (m *merger) carry(rel string, l, b, n entry, data []byte, ensure func() error) error {
	upstream := false
	if !m.noBase && !alwaysCarried(rel) {
		// What the update changed: type, mode, owner, content. An
		// attribute it changed alone (a relabel) is no conflict with a
		// local edit, as before attributes were compared.
		same := b.sameModeOwner(n)
		if same {
			var err error
			if same, err = b.sameData(n); err != nil {
				return err
			}
		}
		upstream = !same
	}
	if l.kind == Whiteout {
		m.r.Deleted++
		if n.kind == Absent && m.at.fill {
			// Nothing to hide, but a deletion in a directory that wins
			// whole: the directory is made, and not filled with it.
			if err := ensure(); err != nil {
				return err
			}
		}
		if n.kind == Absent {
			return m.drop(rel) // nothing left to hide
		}
	} else {
		m.r.Carried++
	}
	if l.kind == File && n.kind == File && !alwaysCarried(rel) {
		merged, err := m.fileData(rel, l, b, n, data, upstream)
		if err != nil {
			return err
		}
		if merged != nil {
			data, upstream = merged, false // no conflict left
			// The local metadata over other content: without the
			// integrity attributes of the local content.
			if l, err = l.withoutDerived(); err != nil {
				return err
			}
		}
	}
	if err := ensure(); err != nil {
		return err
	}
	if err := m.write(rel, l, data); err != nil {
		return err
	}
	if err := m.step(rel); err != nil {
		return err
	}
	if !upstream && b.kind == Dir && n.kind == Dir {
		return m.hiddenUnder(rel, l, b, n, nil)
	}
	if !upstream {
		return nil
	}
	if ok, err := l.sameData(n); err != nil || ok {
		return err // both sides made the same change
	}
	return m.keepNew(rel, l, n)
}

// hiddenUnder reports what the update added or changed in the directory
// the local non-directory l (a whiteout, a symlink, a file), or the local
// opaque directory l, hides: the entries of the new image's directory
// that the base's has not, or has with another type, mode, owner or
// content, one listing of each, not recursive (a subdirectory counts by
// its own metadata); for an opaque directory, those it does not hold
// itself (local: its names), which the rules merge.
func (m *merger) hiddenUnder(rel string, l, b, n entry, local map[string]bool) error {
	ents, err := os.ReadDir(n.path)
	if err != nil {
		return err
	}
	count := 0
	for _, d := range ents {
		if local[d.Name()] {
			continue
		}
		ne, err := lookup(filepath.Join(n.path, d.Name()))
		if err != nil {
			return err
		}
		be, err := lookup(filepath.Join(b.path, d.Name()))
		if err != nil {
			return err
		}
		same := be.sameModeOwner(ne)
		if same {
			if same, err = be.sameData(ne); err != nil {
				return err
			}
		}
		if !same {
			count++
		}
	}
	if count == 0 {
		return nil
	}
	what := "entries"
	if count == 1 {
		what = "entry"
	}
	switch l.kind {
	case Whiteout:
		m.conflict(rel, "deleted locally; the new image adds or changes %d %s under it: it stays deleted", count, what)
	case Dir:
		m.conflict(rel, "made again locally (opaque: the image's entries hidden); the new image adds or changes %d %s in it: they stay hidden", count, what)
	default:
		m.conflict(rel, "a %s locally; the new image adds or changes %d %s in the directory it replaced: the local one wins", l.kind, count, what)
	}
	return nil
}

// fileData returns merged content for a local file whose path is a file in
// the new image too, or nil: account databases are merged entry by entry,
// and a metadata-only local change (chmod, chown) takes the new image's
// content. data is the local content when the upper file has none
// (metacopy).
func (m *merger) fileData(rel string, l, b, n entry, data []byte, upstream bool) ([]byte, error) {
	if db, ok := accountDB(rel); ok {
		out, issues, err := m.mergeAccounts(db, l, b, n, data)
		for _, s := range issues {
			m.conflict(rel, "%s", s)
		}
		return out, err
	}
	if !upstream || m.noBase || b.kind != File {
		return nil, nil
	}
	if data == nil {
		same, err := l.sameData(b)
		if err != nil || !same {
			return nil, err
		}
	}
	return n.content()
}

func (m *merger) mergeAccounts(db DB, l, b, n entry, ld []byte) ([]byte, []string, error) {
	var err error
	if ld == nil {
		if ld, err = l.content(); err != nil {
			return nil, nil, err
		}
	}
	var bd []byte
	if b.kind == File {
		if bd, err = b.content(); err != nil {
			return nil, nil, err
		}
	}
	nd, err := n.content()
	if err != nil {
		return nil, nil, err
	}
	for _, d := range [][]byte{ld, bd, nd} {
		if bytes.Count(d, []byte("\n")) > maxAccountLines {
			// Parsed entry by entry, a few MiB of newlines would take
			// gigabytes: PID 1 out of memory is a kernel panic.
			return ld, []string{fmt.Sprintf("%s has more than %d lines in one of its versions: not merged entry by entry, the local version is kept", db, maxAccountLines)}, nil
		}
	}
	out, issues := MergeAccounts(db, ld, bd, nd, b.kind == File)
	return out, issues, nil
}

// maxAccountLines is the most lines an account database may have to be
// merged entry by entry: a machine with its users in files has hundreds.
const maxAccountLines = 1 << 16

// keepNew records the conflict and keeps the new image's version of a file
// or symlink as NAME.keel-new.
func (m *merger) keepNew(rel string, l, n entry) error {
	verb := "changed"
	if l.kind == Whiteout {
		verb = "deleted"
	}
	switch n.kind {
	case Absent:
		m.conflict(rel, "%s locally, removed in the new image: the local version is kept", verb)
		return nil
	case File, Symlink:
	default:
		m.conflict(rel, "%s locally, the new image has a %s: the local version wins", verb, n.kind)
		return nil
	}
	if err := m.write(rel+KeepSuffix, n, nil); err != nil {
		return err
	}
	m.conflict(rel, "%s locally and in the new image: the local version wins, the new one is %s", verb, filepath.Base(rel)+KeepSuffix)
	return m.step(rel + KeepSuffix)
}

// drop takes a local entry that is not carried out of an in-place Out.
func (m *merger) drop(rel string) error {
	if !m.o.InPlace {
		return nil
	}
	return m.remove(rel, false)
}

// write puts src at rel in Out (data, when not nil, is its content). In
// place, an entry carried as it is stays and loses only the attributes
// that are not carried; anything else replaces what is there.
func (m *merger) write(rel string, src entry, data []byte) error {
	dst := filepath.Join(m.o.Out, rel)
	if !m.o.InPlace {
		return put(dst, src, data)
	}
	if data == nil && src.path == filepath.Join(m.o.Local, rel) {
		return dropStale(dst, src)
	}
	if err := unix.Unlink(dst); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "remove", Path: dst, Err: err}
	}
	return put(dst, src, data)
}
