// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSetAsideUppers: every upper of the slot moves, whole, into
// slot/.set-aside; an older set-aside upper of the same image is replaced;
// what is not an upper, the other slot and anything outside stay as they
// were.
func TestSetAsideUppers(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	write(t, outside, map[string]string{"precious": "outside"})
	write(t, root, map[string]string{
		"@overlay/b/B1/upper/etc/x":            "trial",
		"@overlay/b/B1/work/work/":             "",
		"@overlay/b/B1/etc-merge.json":         "{}",
		"@overlay/b/os%2Fv0/upper/etc/y":       "an older image's",
		"@overlay/b/.set-aside/B1/upper/etc/x": "an earlier trial",
		"@overlay/b/.set-aside/B0/upper/etc/z": "another image's, kept",
		"@overlay/b/.B1.tmp/upper/etc/x":       "a merge cut short",
		"@overlay/b/backup/photos/1.jpg":       "a user's",
		"@overlay/b/notes.txt":                 "a file",
		"@overlay/a/A1/upper/etc/x":            "the last good image's",
		"@overlay/c/C1/upper/etc/x":            "another slot",
	})
	must(t, os.Symlink(outside, filepath.Join(root, "@overlay/b/linked")))
	must(t, os.Chmod(filepath.Join(root, "@overlay/b/B1/work/work"), 0))
	before := snapshot(t, root)

	moved, err := SetAsideUppers(root, "b", nil)
	must(t, err)
	sort.Strings(moved)
	want := []string{filepath.Join(root, "@overlay/b/.set-aside/B1"), filepath.Join(root, "@overlay/b/.set-aside/os%2Fv0")}
	if !reflect.DeepEqual(moved, want) {
		t.Errorf("moved %v, want %v", moved, want)
	}
	after := snapshot(t, root)
	for p, d := range before {
		var to string
		switch {
		case strings.HasPrefix(p, "@overlay/b/.set-aside/B1"):
			to = "" // replaced
		case strings.HasPrefix(p, "@overlay/b/B1"), strings.HasPrefix(p, "@overlay/b/os%2Fv0"):
			to = "@overlay/b/.set-aside/" + strings.TrimPrefix(p, "@overlay/b/")
		default:
			to = p
		}
		if to == "" {
			continue
		}
		if after[to] != d {
			t.Errorf("%s: before %q, at %s after %q", p, d, to, after[to])
		}
		if to != p && after[p] != "" {
			t.Errorf("%s still there after it was set aside", p)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "@overlay/b/.set-aside/B1/upper/etc/x")); string(got) != "trial" {
		t.Errorf(".set-aside/B1 holds %q, want the upper just set aside", got)
	}
	if fi, err := os.Stat(filepath.Join(root, "@overlay/b", SetAside)); err != nil || fi.Mode().Perm() != 0o755 {
		// made by write() here; SetAsideUppers makes a missing one 0700
		t.Errorf("%s: %v %v", SetAside, fi, err)
	}

	// Again: nothing left to set aside.
	if moved, err := SetAsideUppers(root, "b", nil); err != nil || len(moved) != 0 {
		t.Errorf("second call: moved %v, %v: want nothing", moved, err)
	}
}

func TestSetAsideUppersEdgeCases(t *testing.T) {
	t.Run("no @overlay, no slot", func(t *testing.T) {
		root := t.TempDir()
		if moved, err := SetAsideUppers(root, "b", nil); err != nil || moved != nil {
			t.Errorf("got %v, %v", moved, err)
		}
		write(t, root, map[string]string{"@overlay/a/A1/upper/f": ""})
		if moved, err := SetAsideUppers(root, "b", nil); err != nil || moved != nil {
			t.Errorf("got %v, %v", moved, err)
		}
	})
	t.Run("a new .set-aside is private", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, map[string]string{"@overlay/b/B1/upper/f": ""})
		if _, err := SetAsideUppers(root, "b", nil); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(root, "@overlay/b", SetAside))
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v: want a directory, mode 0700", SetAside, fi, err)
		}
	})
	t.Run(".set-aside is a symlink", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, map[string]string{"@overlay/b/B1/upper/f": "", "@overlay/a/": ""})
		must(t, os.Symlink("../a", filepath.Join(root, "@overlay/b", SetAside)))
		moved, err := SetAsideUppers(root, "b", nil)
		if err == nil || !strings.Contains(err.Error(), "is a symlink, expected a directory") || moved != nil {
			t.Errorf("got %v, %v: want a refusal naming the symlink", moved, err)
		}
		if _, err := os.Stat(filepath.Join(root, "@overlay/b/B1/upper/f")); err != nil {
			t.Errorf("the upper moved: %v", err)
		}
	})
	t.Run("bad slot name", func(t *testing.T) {
		if _, err := SetAsideUppers(t.TempDir(), "../a", nil); err == nil || !strings.Contains(err.Error(), "overlay slot name") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestSetAsideUppersStale: with stale, only the uppers it picks from
// their merge record move; it sees the record's bytes, or ErrNotExist for
// an upper no merge made.
func TestSetAsideUppersStale(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"@overlay/a/A1/upper/etc/x":    "merged from the last good image",
		"@overlay/a/A1/etc-merge.json": `{"from_slot":"b","from_image":"B1"}`,
		"@overlay/a/A0/upper/etc/x":    "a formerly good image's own",
		"@overlay/a/A0/etc-merge.json": `{"from_slot":"b","from_image":"B0"}`,
		"@overlay/a/first/upper/etc/x": "no merge made it",
	})
	seen := map[string]bool{}
	moved, err := SetAsideUppers(root, "a", func(rec []byte, err error) bool {
		seen[string(rec)] = true
		if errors.Is(err, fs.ErrNotExist) {
			seen["none"] = true
			return false
		}
		return strings.Contains(string(rec), `"from_image":"B1"`)
	})
	must(t, err)
	if want := []string{filepath.Join(root, "@overlay/a/.set-aside/A1")}; !reflect.DeepEqual(moved, want) {
		t.Errorf("moved %v, want %v", moved, want)
	}
	if !seen["none"] || len(seen) != 4 {
		t.Errorf("stale saw %v: want both records and one upper without", seen)
	}
	for _, kept := range []string{"@overlay/a/A0/upper/etc/x", "@overlay/a/first/upper/etc/x"} {
		if _, err := os.Stat(filepath.Join(root, kept)); err != nil {
			t.Errorf("%s: %v: want it kept", kept, err)
		}
	}
}

// TestPruneUppersSetAside: the set-aside uppers of images no longer in the
// slot go with the slot's other stale uppers; the one of the image in the
// slot stays; a .set-aside that is a symlink is never followed.
func TestPruneUppersSetAside(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"@overlay/b/B2/upper/f":            "current",
		"@overlay/b/.set-aside/B2/upper/f": "current image, an earlier trial",
		"@overlay/b/.set-aside/B1/upper/f": "an image gone from the slot",
		"@overlay/b/.set-aside/keep/notes": "not an upper",
		"@overlay/a/A1/upper/f":            "slot a",
		"@overlay/a/A0/upper/f":            "slot a, reachable through the symlink",
	})
	must(t, os.Symlink("../b", filepath.Join(root, "@overlay/a", SetAside)))
	removed, err := PruneUppers(root, map[string]string{"b": "B2", "a": "A1"})
	must(t, err)
	sort.Strings(removed)
	want := []string{filepath.Join(root, "@overlay/a/A0"), filepath.Join(root, "@overlay/b/.set-aside/B1")}
	if !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, p := range []string{"@overlay/b/B2/upper/f", "@overlay/b/.set-aside/B2/upper/f", "@overlay/b/.set-aside/keep/notes", "@overlay/a/A1/upper/f"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestOtherUppers: an upper of another image, in any slot or set aside,
// counts; the upper itself, user directories, temporary directories and
// files do not.
func TestOtherUppers(t *testing.T) {
	root := t.TempDir()
	self := filepath.Join(root, "@overlay/a/A2")
	if OtherUppers(root, self) {
		t.Error("no @overlay: found an upper")
	}
	write(t, root, map[string]string{
		"@overlay/a/A2/upper/etc/x":        "itself",
		"@overlay/a/backup/photos/1":       "a user's",
		"@overlay/a/.A3.tmp/upper/x":       "a merge cut short",
		"@overlay/b/notes.txt":             "a file",
		"@overlay/b/merged/etc-merge.json": "a record alone",
	})
	if OtherUppers(root, self) {
		t.Error("found an upper among what is not one")
	}
	for _, other := range []string{"@overlay/b/B1/upper/etc/x", "@overlay/b/.set-aside/B0/work/", "@overlay/a/A1/upper/"} {
		r := t.TempDir()
		must(t, os.CopyFS(r, os.DirFS(root)))
		write(t, r, map[string]string{other: ""})
		if !OtherUppers(r, filepath.Join(r, "@overlay/a/A2")) {
			t.Errorf("%s: not found", other)
		}
	}
}

// TestImageUppers: the uppers of other images with their slot and image
// id, in order; not the upper itself, not a set-aside one (a trial's), not
// what is not an upper, not one under a slot directory keel would not make,
// not through a symlinked slot.
func TestImageUppers(t *testing.T) {
	root := t.TempDir()
	self := filepath.Join(root, "@overlay/b/B2")
	write(t, root, map[string]string{
		"@overlay/b/B2/upper/etc/x":        "itself",
		"@overlay/b/B1/upper/etc/x":        "",
		"@overlay/a/A1/work/":              "",
		"@overlay/a/.set-aside/A0/upper/":  "",
		"@overlay/a/backup/photos/1":       "a user's",
		"@overlay/Weird/W1/upper/":         "not a slot keel names",
		"@overlay/b/merged/etc-merge.json": "a record alone",
		"@overlay/a/.A3.tmp/upper/x":       "a merge cut short",
	})
	must(t, os.Symlink("a", filepath.Join(root, "@overlay/c")))
	got := fmt.Sprint(ImageUppers(root, self))
	want := fmt.Sprint([]ImageUpper{
		{Slot: "a", ImageID: "A1", Dir: filepath.Join(root, "@overlay/a/A1")},
		{Slot: "b", ImageID: "B1", Dir: filepath.Join(root, "@overlay/b/B1")},
	})
	if got != want {
		t.Errorf("ImageUppers = %s, want %s", got, want)
	}
	if ups := ImageUppers(t.TempDir(), self); ups != nil {
		t.Errorf("no @overlay: %v", ups)
	}
}

// TestPruneUppersSymlinkedSlot: a slot directory that is a symlink is not
// followed, for its .set-aside either.
func TestPruneUppersSymlinkedSlot(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"@overlay/b/.set-aside/B1/upper/f": "", "@overlay/b/B1/upper/f": ""})
	must(t, os.Symlink("b", filepath.Join(root, "@overlay/a")))
	removed, err := PruneUppers(root, map[string]string{"a": "A1"})
	if err != nil || len(removed) != 0 {
		t.Errorf("removed %v, %v: want nothing (a is a symlink to b)", removed, err)
	}
	for _, p := range []string{"@overlay/b/.set-aside/B1/upper/f", "@overlay/b/B1/upper/f"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// TestSetAsideHostileRecord: the record of an upper's /etc merge is the
// data partition's bytes, which the running system can write. A FIFO must
// not block the boot, a sparse file of a terabyte must not be read whole
// (PID 1 out of memory), and a symlink must not be followed: each reaches
// stale as an error, the upper set aside as one no known merge made.
func TestSetAsideHostileRecord(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"@overlay/a/fifo/upper/etc/x":  "x",
		"@overlay/a/huge/upper/etc/x":  "x",
		"@overlay/a/link/upper/etc/x":  "x",
		"@overlay/a/secret":            `{"from_slot":"b","from_image":"B1"}`,
		"@overlay/a/ok/upper/etc/x":    "x",
		"@overlay/a/ok/etc-merge.json": `{"from_slot":"b","from_image":"B1"}`,
	})
	dir := filepath.Join(root, "@overlay/a")
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo", EtcMergeFile), 0o644))
	f, err := os.Create(filepath.Join(dir, "huge", EtcMergeFile))
	must(t, err)
	must(t, f.Truncate(1<<40))
	must(t, f.Close())
	must(t, os.Symlink("../secret", filepath.Join(dir, "link", EtcMergeFile)))
	errs := map[string]error{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err = SetAsideUppers(root, "a", func(rec []byte, err error) bool {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[string(rec)+err.Error()] = err
				return true
			}
			if len(rec) > maxRecord {
				t.Errorf("stale got a record of %d bytes", len(rec))
			}
			return strings.Contains(string(rec), `"from_image":"B1"`)
		})
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // a hang guard: the FIFO's open must not wait
		t.Fatal("SetAsideUppers blocked on a FIFO record")
	}
	must(t, err)
	if len(errs) != 3 {
		t.Errorf("stale saw %d errors, want 3 (the FIFO, the huge file, the symlink): %v", len(errs), errs)
	}
	for _, name := range []string{"fifo", "huge", "link", "ok"} {
		if _, err := os.Stat(filepath.Join(dir, SetAside, name, "upper/etc/x")); err != nil {
			t.Errorf("%s: %v: want it set aside", name, err)
		}
	}
}
