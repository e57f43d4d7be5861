// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mk builds a tree under root. Each value is one of:
//
//	"f CONTENT"   a file (mode 0644)       "F MODE CONTENT" a file with a mode
//	"d"           a directory              "o" an opaque directory
//	"l TARGET"    a symlink                "w" a whiteout (char 0:0)
//	"p"           a fifo
//
// Parents are made as plain directories.
func mk(t testing.TB, root string, tree map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(tree))
	for k := range tree {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, rel := range keys {
		spec := tree[rel]
		p := filepath.Join(root, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		kind, rest, _ := strings.Cut(spec, " ")
		switch kind {
		case "f":
			must(t, os.WriteFile(p, []byte(rest), 0o644))
			must(t, os.Chmod(p, 0o644))
		case "F":
			var mode uint32
			mstr, content, _ := strings.Cut(rest, " ")
			fmt.Sscanf(mstr, "%o", &mode)
			must(t, os.WriteFile(p, []byte(content), 0o600))
			must(t, unix.Chmod(p, mode))
		case "d", "o":
			must(t, os.MkdirAll(p, 0o755))
			if kind == "o" {
				must(t, unix.Lsetxattr(p, "trusted.overlay.opaque", []byte("y"), 0))
			}
		case "l":
			must(t, os.Symlink(rest, p))
		case "w":
			must(t, unix.Mknod(p, unix.S_IFCHR, 0))
		case "p":
			must(t, unix.Mkfifo(p, 0o644))
		default:
			t.Fatalf("mk %s: bad spec %q", rel, spec)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dump describes every path under root: type, mode, owner, content or
// target, and the opaque mark.
func dump(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if _, err := os.Lstat(root); os.IsNotExist(err) {
		return out
	}
	must(t, filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		e, err := lookup(p)
		if err != nil {
			return err
		}
		d := fmt.Sprintf("%s %04o %d:%d", e.kind, e.mode(), e.st.Uid, e.st.Gid)
		switch e.kind {
		case File:
			b, _ := os.ReadFile(p)
			d += " " + string(b)
		case Symlink:
			tg, _ := os.Readlink(p)
			d += " -> " + tg
		case Dir:
			if e.opaque() {
				d += " opaque"
			}
		}
		out[rel] = d
		return nil
	}))
	return out
}

// trees makes local, base and new under a temporary directory and returns
// the merge options (Out not yet existing).
func trees(t *testing.T, local, base, new map[string]string) Options {
	t.Helper()
	dir := t.TempDir()
	o := Options{
		Local: filepath.Join(dir, "local"), Base: filepath.Join(dir, "base"),
		New: filepath.Join(dir, "new"), Out: filepath.Join(dir, "out"),
	}
	for p, tree := range map[string]map[string]string{o.Local: local, o.Base: base, o.New: new} {
		must(t, os.MkdirAll(p, 0o755))
		mk(t, p, tree)
	}
	return o
}

// view mounts lower and upper as overlayfs, as keel does, and dumps what
// the running system sees there (the test is skipped where overlayfs
// cannot be mounted).
func view(t *testing.T, lower, upper string) map[string]string {
	t.Helper()
	d := t.TempDir()
	w, m := filepath.Join(d, "w"), filepath.Join(d, "m")
	must(t, os.Mkdir(w, 0o755))
	must(t, os.Mkdir(m, 0o755))
	if _, err := os.Lstat(upper); os.IsNotExist(err) {
		upper = filepath.Join(d, "empty")
		must(t, os.Mkdir(upper, 0o755))
	}
	if err := unix.Mount("overlay", m, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+w+",redirect_dir=follow"); err != nil {
		t.Skipf("overlayfs: %v", err)
	}
	defer func() { must(t, unix.Unmount(m, 0)) }()
	out := dump(t, m)
	for rel, v := range out { // what overlayfs says of its own marks is not seen
		out[rel] = strings.TrimSuffix(v, " opaque")
	}
	return out
}
