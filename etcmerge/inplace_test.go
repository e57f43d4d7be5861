// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// mergeBoth merges o into o.Out and, into a copy of o.Local made with
// `cp -a` (as a btrfs snapshot of the old upper would be), in place and
// one entry at a time: both must give the same result, error and tree
// (types, modes, owners, contents, opacity, times, extended attributes),
// whatever the order the entries were merged in. It returns the first.
func mergeBoth(t *testing.T, o Options) (Result, error) {
	t.Helper()
	r, err := Merge(o)
	ip := o
	ip.Out, ip.InPlace, ip.workers = o.Out+".inplace", true, 1
	if _, serr := os.Lstat(o.Local); serr == nil {
		if out, cerr := exec.Command("cp", "-a", o.Local, ip.Out).CombinedOutput(); cerr != nil {
			t.Fatalf("cp -a %s: %v: %s", o.Local, cerr, out)
		}
	}
	ri, erri := Merge(ip)
	if (err == nil) != (erri == nil) {
		t.Fatalf("merge: %v; in place: %v", err, erri)
	}
	if err != nil {
		return r, err
	}
	if !reflect.DeepEqual(r, ri) {
		t.Errorf("in place the result differs:\n got %+v\nwant %+v", ri, r)
	}
	if got, want := fullDump(t, ip.Out), fullDump(t, o.Out); !reflect.DeepEqual(got, want) {
		t.Errorf("in place the tree differs:\n got %v\nwant %v", got, want)
	}
	return r, err
}

// fullDump is dump with each entry's modification time and the extended
// attributes it keeps.
func fullDump(t *testing.T, root string) map[string]string {
	t.Helper()
	out := dump(t, root)
	for rel, d := range out {
		p := filepath.Join(root, rel)
		e, err := lookup(p)
		must(t, err)
		xs, err := allXattrs(p)
		must(t, err)
		var names []string
		for n, v := range xs {
			names = append(names, n+"="+string(v))
		}
		sort.Strings(names)
		out[rel] = fmt.Sprintf("%s mtime %d.%09d xattrs [%s]", d, e.st.Mtim.Sec, e.st.Mtim.Nsec, strings.Join(names, " "))
	}
	if _, err := os.Lstat(root); err == nil {
		e, err := lookup(root)
		must(t, err)
		out["."] = fmt.Sprintf("%s %04o mtime %d", e.kind, e.mode(), e.st.Mtim.Sec)
	}
	return out
}
