// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MountInfo is one line of /proc/self/mountinfo (proc(5)).
type MountInfo struct {
	ID, Parent int
	Dev        string // major:minor of the file system
	Root       string // the directory of the file system mounted here
	Point      string // where it is mounted, relative to the reader's root
	Options    string // per-mount options: rw, ro, nosuid, ...
	FSType     string
	Source     string
	Super      string // per-superblock options
}

// ReadOnly reports whether the mount is read-only.
func (m MountInfo) ReadOnly() bool {
	return slices.Contains(strings.Split(m.Options, ","), "ro")
}

// SuperReadOnly reports whether the file system itself is read-only (its
// superblock's options), not only this mount of it.
func (m MountInfo) SuperReadOnly() bool {
	return slices.Contains(strings.Split(m.Super, ","), "ro")
}

// ParseMountinfo parses the text of /proc/self/mountinfo. Paths are
// unescaped (the kernel writes space, tab, newline and backslash as \ooo).
// A line it cannot parse is left out and named in the error; the mounts
// of every other line are returned all the same, so that one odd line does
// not leave every file system mounted.
func ParseMountinfo(b []byte) ([]MountInfo, error) {
	var ms []MountInfo
	var errs []error
	for i, line := range strings.Split(string(b), "\n") {
		if strings.Trim(line, " ") == "" {
			continue
		}
		m, err := parseMountLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("mountinfo line %d %q: %w", i+1, line, err))
			continue
		}
		ms = append(ms, m)
	}
	return ms, errors.Join(errs...)
}

// parseMountLine splits at spaces alone: the kernel escapes only space,
// tab, newline and backslash in a path, so any other byte — a vertical
// tab, a no-break space around a "-" in a mount point — is part of it.
func parseMountLine(line string) (MountInfo, error) {
	f := spaceFields(line)
	sep := slices.Index(f, "-")
	if sep < 6 || len(f) < sep+3 {
		return MountInfo{}, fmt.Errorf("expected 6 fields or more, \"-\", then type, source and options")
	}
	id, err1 := strconv.Atoi(f[0])
	parent, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || id < 0 || parent < 0 {
		return MountInfo{}, fmt.Errorf("expected decimal mount and parent IDs, found %q and %q", f[0], f[1])
	}
	if !strings.Contains(f[2], ":") {
		return MountInfo{}, fmt.Errorf("expected major:minor, found %q", f[2])
	}
	m := MountInfo{ID: id, Parent: parent, Dev: f[2], Root: Unescape(f[3]), Point: Unescape(f[4]),
		Options: f[5], FSType: Unescape(f[sep+1]), Source: Unescape(f[sep+2])}
	if len(f) > sep+3 {
		m.Super = f[sep+3]
	}
	if !strings.HasPrefix(m.Point, "/") {
		return MountInfo{}, fmt.Errorf("mount point %q: expected an absolute path", m.Point)
	}
	return m, nil
}

// spaceFields splits line at runs of spaces, and at nothing else: what
// Escape leaves (a vertical tab, a no-break space) belongs to the field.
func spaceFields(line string) []string {
	return slices.DeleteFunc(strings.Split(line, " "), func(s string) bool { return s == "" })
}

// Unescape undoes the kernel's octal escapes (\040 for a space).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			n, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 || s[0] > '3' {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}

// Escape writes the characters that would split a field (space, tab,
// newline, backslash) as \ooo, as the kernel does.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Under reports whether path is top or below it.
func Under(path, top string) bool {
	if top == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == top || strings.HasPrefix(path, top+"/")
}

// UnmountOrder returns the mounts at or below top in an order that unmounts
// each before the mount it sits on: a depth-first walk of the mount tree,
// children first, later mounts of a parent before earlier ones (an
// overmount is the child of what it covers, so it comes first too). Mounts
// below top whose parent is not below top (top itself, or a mount moved
// there) start trees of their own, the later ones first. Loops in a
// malformed table are cut.
func UnmountOrder(ms []MountInfo, top string) []MountInfo {
	in := map[int]bool{}
	children := map[int][]int{}
	var roots []int
	for _, m := range ms {
		if Under(m.Point, top) {
			in[m.ID] = true
		}
	}
	seen := map[int]bool{}
	for i, m := range ms {
		// A malformed table may repeat an ID: each entry must itself be
		// below top.
		if !in[m.ID] || seen[m.ID] || !Under(m.Point, top) {
			continue
		}
		seen[m.ID] = true
		if in[m.Parent] && m.Parent != m.ID {
			children[m.Parent] = append(children[m.Parent], i)
		} else {
			roots = append(roots, i)
		}
	}
	var out []MountInfo
	done := map[int]bool{}
	var walk func(i int)
	walk = func(i int) {
		if done[ms[i].ID] {
			return
		}
		done[ms[i].ID] = true
		kids := children[ms[i].ID]
		for k := len(kids) - 1; k >= 0; k-- {
			walk(kids[k])
		}
		out = append(out, ms[i])
	}
	for k := len(roots) - 1; k >= 0; k-- {
		walk(roots[k])
	}
	// Mounts only reachable through a loop were never walked.
	for i, m := range ms {
		if in[m.ID] && !done[m.ID] {
			walk(i)
		}
	}
	return out
}
