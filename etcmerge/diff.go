// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"os"
	"path/filepath"
	"strings"
)

// Change is one local change in /etc against the image: what the next
// update carries (or, for Carried false, what it does not).
type Change struct {
	Path    string `json:"path"`
	Change  string `json:"change"` // added, modified, metadata, replaced, deleted, opaque, in opaque, identity, unchanged copy, special, stale copy
	Kind    string `json:"kind"`   // file, directory, symlink, whiteout, special file
	Carried bool   `json:"carried"`
}

// Changes lists the local changes in local (an upper's etc/) against base
// (the image's /etc), walking only local, in path order. A copy-up that
// changed nothing is listed as "unchanged copy", not carried.
func Changes(local, base string) ([]Change, error) {
	l, err := lookup(local)
	if err != nil || l.kind != Dir {
		return nil, err
	}
	var out []Change
	var opaque []string // opaque directories: everything under them is carried
	err = filepath.WalkDir(local, func(p string, _ os.DirEntry, err error) error {
		if err != nil || p == local {
			return err
		}
		rel, _ := filepath.Rel(local, p)
		l, err := lookupLocal(p)
		if err != nil {
			return err
		}
		b, err := lookup(filepath.Join(base, rel))
		if err != nil {
			return err
		}
		what, err := change(rel, l, b)
		if err != nil || what == "" {
			return err
		}
		if what == "opaque" {
			opaque = append(opaque, rel+"/")
		}
		if what == "unchanged copy" && under(rel, opaque) {
			what = "in opaque"
		}
		carried := what != "unchanged copy" && what != "special" && what != "stale copy"
		out = append(out, Change{Path: "/etc/" + rel, Change: what, Kind: l.kind.String(), Carried: carried})
		return nil
	})
	return out, err
}

// change names what the local entry l changed against the base entry b;
// "" for a directory that is only the parent of changes.
func change(rel string, l, b entry) (string, error) {
	switch {
	case l.kind == Other:
		return "special", nil
	case l.kind != Dir && strings.HasSuffix(rel, KeepSuffix):
		return "stale copy", nil
	case l.kind == Whiteout:
		return "deleted", nil
	case l.opaque():
		return "opaque", nil
	case b.kind == Absent:
		return "added", nil
	case l.kind != b.kind:
		return "replaced", nil
	}
	sameMeta, err := l.sameMeta(b)
	if err != nil {
		return "", err
	}
	switch {
	case l.kind == Dir && sameMeta:
		return "", nil
	case l.kind == Dir, l.metacopy():
		return "metadata", nil
	}
	same, err := l.sameData(b)
	switch {
	case err != nil:
		return "", err
	case !same:
		return "modified", nil
	case !sameMeta:
		return "metadata", nil
	case alwaysCarried(rel):
		return "identity", nil
	}
	return "unchanged copy", nil
}

func under(rel string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(rel, d) {
			return true
		}
	}
	return false
}
