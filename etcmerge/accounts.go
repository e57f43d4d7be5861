// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"fmt"
	"strings"
)

// DB is one of the account databases merged entry by entry.
type DB int

// The account databases, by their file names under /etc.
const (
	Passwd DB = iota
	Group
	Shadow
	GShadow
	SubUID
	SubGID
)

var dbNames = [...]string{"passwd", "group", "shadow", "gshadow", "subuid", "subgid"}

func (d DB) String() string { return dbNames[d] }

// accountDB says which database the file rel (relative to /etc) is.
func accountDB(rel string) (DB, bool) {
	for i, n := range dbNames {
		if rel == n {
			return DB(i), true
		}
	}
	return 0, false
}

// Entry is one line of an account database. Key identifies it across the
// three versions: the user or group name, or for subuid/subgid the whole
// line (a user may own several ranges). ID is the UID or GID field of
// passwd and group ("" elsewhere). Lines that are not entries (comments,
// blank lines, no ':') are kept verbatim with a key no entry can have.
type Entry struct {
	Key, ID, Line string
}

// ParseAccounts splits data into entries. It accepts anything: a line it
// does not understand is kept as it is, so FormatAccounts gives back data
// (with a final newline added when missing).
func ParseAccounts(db DB, data []byte) []Entry {
	s := strings.TrimSuffix(string(data), "\n")
	if len(data) == 0 {
		return nil
	}
	lines := strings.Split(s, "\n")
	out := make([]Entry, 0, len(lines))
	for _, line := range lines {
		out = append(out, parseEntry(db, line))
	}
	return out
}

func parseEntry(db DB, line string) Entry {
	name, _, ok := strings.Cut(line, ":")
	if !ok || name == "" || strings.HasPrefix(line, "#") {
		return Entry{Key: "\x00" + line, Line: line}
	}
	e := Entry{Key: name, Line: line}
	switch db {
	case SubUID, SubGID:
		e.Key = line
	case Passwd, Group:
		if f := strings.SplitN(line, ":", 4); len(f) > 2 {
			e.ID = f[2]
		}
	}
	return e
}

// FormatAccounts is the inverse of ParseAccounts.
func FormatAccounts(es []Entry) []byte {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.Line)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// MergeAccounts merges one account database with the rule of whole files,
// entry by entry: a local entry the machine changed is kept as it is (local
// wins: passwords, shells, group members), one it never changed (equal to
// the base's) takes the new image's version (a password locked upstream,
// a user taken out of a group), entries the new image added are appended,
// entries deleted locally stay deleted, and an entry upstream removed that
// the machine never changed goes. A UID or GID is never renumbered: an
// unchanged entry whose id the new image changed keeps the local one
// (files on /var and /home belong to it), reported. Without a base
// (haveBase false) nothing is known to be unchanged or deleted. The issues
// are what it could not reconcile: the same name with another id, the
// same id with another name, an entry changed on both sides, or changed
// here and removed upstream (kept).
func MergeAccounts(db DB, local, base, new []byte, haveBase bool) ([]byte, []string) {
	l, b, n := ParseAccounts(db, local), index(ParseAccounts(db, base)), ParseAccounts(db, new)
	ni := index(n)
	lk := index(l)
	ids := map[string]string{} // local id -> name
	var out []Entry
	var issues []string
	for _, e := range l {
		be, inBase := b[e.Key]
		ne, inNew := ni[e.Key]
		if haveBase && inBase && !inNew {
			if be.Line == e.Line {
				continue // removed upstream, never changed here
			}
			issues = append(issues, fmt.Sprintf("%s entry %s changed locally, removed in the new image: the local one is kept", db, e.Key))
		}
		if haveBase && inBase && inNew && be.Line == e.Line && sameIDs(db, e, ne) {
			e = ne // changed upstream, never changed here
		}
		if e.ID != "" {
			ids[e.ID] = e.Key
		}
		out = append(out, e)
		if inNew {
			issues = append(issues, bothChanged(db, e, be, ne, inBase)...)
		}
	}
	for _, e := range n {
		if _, ok := lk[e.Key]; ok {
			continue
		}
		if be, ok := b[e.Key]; haveBase && ok {
			if be.Line != e.Line && !strings.HasPrefix(e.Key, "\x00") {
				issues = append(issues, fmt.Sprintf("%s entry %s deleted locally and changed in the new image: it stays deleted", db, e.Key))
			}
			continue
		}
		if other, ok := ids[e.ID]; ok && e.ID != "" {
			issues = append(issues, fmt.Sprintf("%s %s of the new image has id %s, which is local %s's: both are kept, the id is not renumbered", db, e.Key, e.ID, other))
		}
		out = append(out, e)
	}
	return FormatAccounts(out), issues
}

// sameIDs reports whether two versions of an entry have the same ids: the
// UID and the primary GID of a passwd entry, the GID of a group.
func sameIDs(db DB, a, b Entry) bool {
	return a.ID == b.ID && (db != Passwd || primaryGID(a) == primaryGID(b))
}

// primaryGID is a passwd entry's fourth field.
func primaryGID(e Entry) string {
	if f := strings.SplitN(e.Line, ":", 5); len(f) > 3 {
		return f[3]
	}
	return ""
}

// bothChanged reports a local entry that differs from the new image's.
func bothChanged(db DB, l, b, n Entry, inBase bool) []string {
	switch {
	case l.Line == n.Line:
		return nil
	case l.ID != n.ID:
		return []string{fmt.Sprintf("%s %s has id %s locally, %s in the new image: the local one is kept, files of the new image owned by %s are not renumbered", db, l.Key, l.ID, n.ID, n.ID)}
	case db == Passwd && primaryGID(l) != primaryGID(n):
		return []string{fmt.Sprintf("%s %s has primary group %s locally, %s in the new image: the local entry is kept, not renumbered", db, l.Key, primaryGID(l), primaryGID(n))}
	case inBase && b.Line != l.Line && b.Line != n.Line:
		return []string{fmt.Sprintf("%s entry %s changed locally and in the new image: the local one wins", db, l.Key)}
	}
	return nil
}

// index maps keys to entries; the first of duplicate keys wins.
func index(es []Entry) map[string]Entry {
	m := make(map[string]Entry, len(es))
	for _, e := range es {
		if _, ok := m[e.Key]; !ok {
			m[e.Key] = e
		}
	}
	return m
}
