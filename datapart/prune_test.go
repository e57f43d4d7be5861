// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/keel-boot/keel/mounts"
	"golang.org/x/sys/unix"
)

func TestPruneUppersRemovesOnlyStaleUppers(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	write(t, outside, map[string]string{"precious": "outside"})
	write(t, root, map[string]string{
		"@var/lib/x":                  "var",
		"@home/u/.bashrc":             "home",
		"top-level-file":              "top",
		"@overlay/a/new/upper/etc/f":  "current",
		"@overlay/a/old/upper/etc/f":  "stale",
		"@overlay/a/old/work/work/":   "",
		"@overlay/a/os%2Fv1/upper/f":  "stale, encoded name",
		"@overlay/a/.partial/x":       "not an image id",
		"@overlay/a/%2f/x":            "not canonical",
		"@overlay/a/stalefile":        "a file, not an upper",
		"@overlay/b/other/upper/f":    "slot b is current",
		"@overlay/b/older/upper/f":    "slot b stale",
		"@overlay/c/gone/upper/f":     "slot c not in keep: untouched",
		"@overlay/notes.txt":          "not a slot",
		"@overlay/a/old/upper/bin/sh": "x",
		// Named like image ids, but not laid out as keel's uppers: a
		// user's backup, a copy with notes beside it. Kept.
		"@overlay/a/backup/photos/1.jpg":           "user",
		"@overlay/a/A1.before-upgrade/upper/etc/f": "user copy",
		"@overlay/a/A1.before-upgrade/NOTES":       "why",
		"@overlay/a/merged/etc-merge.json":         "a record alone",
	})
	// A symlink named like an upper, pointing outside: never followed.
	must(t, os.Symlink(outside, filepath.Join(root, "@overlay/a/linked")))
	// A symlink inside a stale upper pointing outside: removed, target kept.
	must(t, os.Symlink(outside, filepath.Join(root, "@overlay/a/old/upper/escape")))
	// overlayfs makes work/work mode 000.
	must(t, os.WriteFile(filepath.Join(root, "@overlay/a/old/work/work/f"), nil, 0o600))
	must(t, os.Chmod(filepath.Join(root, "@overlay/a/old/work/work"), 0))
	before := snapshot(t, root)

	removed, err := PruneUppers(root, map[string]string{"a": "new", "b": "other"})
	must(t, err)
	var rel []string
	for _, r := range removed {
		rel = append(rel, strings.TrimPrefix(r, root+"/"))
	}
	sort.Strings(rel)
	if want := []string{"@overlay/a/old", "@overlay/a/os%2Fv1", "@overlay/b/older"}; !reflect.DeepEqual(rel, want) {
		t.Errorf("removed %v, want %v", rel, want)
	}
	after := snapshot(t, root)
	for p, d := range before {
		gone := false
		for _, r := range rel {
			gone = gone || p == r || strings.HasPrefix(p, r+"/")
		}
		if gone != (after[p] == "") || (!gone && after[p] != d) {
			t.Errorf("%s: before %q, after %q, removed %v", p, d, after[p], gone)
		}
	}
	if b, err := os.ReadFile(filepath.Join(outside, "precious")); err != nil || string(b) != "outside" {
		t.Errorf("symlink target damaged: %q, %v", b, err)
	}
}

func TestPruneUppersEdgeCases(t *testing.T) {
	t.Run("no @overlay", func(t *testing.T) {
		removed, err := PruneUppers(t.TempDir(), map[string]string{"a": "x"})
		if err != nil || removed != nil {
			t.Errorf("got %v, %v", removed, err)
		}
	})
	t.Run("@overlay is a symlink", func(t *testing.T) {
		root, outside := t.TempDir(), t.TempDir()
		write(t, outside, map[string]string{"a/old/upper/f": "outside"})
		must(t, os.Symlink(outside, filepath.Join(root, Overlay)))
		removed, err := PruneUppers(root, map[string]string{"a": "new"})
		if err == nil || !strings.Contains(err.Error(), "is a symlink, expected a directory; nothing pruned") || removed != nil {
			t.Errorf("got %v, %v", removed, err)
		}
		if _, err := os.Stat(filepath.Join(outside, "a/old/upper/f")); err != nil {
			t.Error(err)
		}
	})
	t.Run("bad keep entries", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, map[string]string{"@overlay/a/old/upper/f": "", "@overlay/b/old/upper/f": "", "@overlay/x/old/upper/f": ""})
		removed, err := PruneUppers(root, map[string]string{"a": "", "../x": "y", "b": "new"})
		if err == nil || !strings.Contains(err.Error(), "image id") || !strings.Contains(err.Error(), "overlay slot name") {
			t.Errorf("err = %v", err)
		}
		if want := []string{filepath.Join(root, "@overlay/b/old")}; !reflect.DeepEqual(removed, want) {
			t.Errorf("removed %v, want %v (the valid slot is still pruned)", removed, want)
		}
		for _, p := range []string{"@overlay/a/old/upper/f", "@overlay/x/old/upper/f"} {
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("slot is a file", func(t *testing.T) {
		root := t.TempDir()
		write(t, root, map[string]string{"@overlay/a": "file"})
		if removed, err := PruneUppers(root, map[string]string{"a": "new"}); err != nil || removed != nil {
			t.Errorf("got %v, %v", removed, err)
		}
	})
}

// TestPruneRealOverlayUpper prunes an upper that a real overlayfs mount
// used, with the work directory overlayfs left behind.
func TestPruneRealOverlayUpper(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	lower := t.TempDir()
	write(t, lower, map[string]string{"etc/hostname": "image", "etc/gone": "x"})
	old, err := UpperDir(root, "a", "img/1")
	must(t, err)
	l := mounts.Layout{NewRoot: t.TempDir(), Lower: lower}
	ms, err := l.RootMounts(mounts.OverlayPersistent, old)
	must(t, err)
	s := mounts.NewStack()
	if err := s.DoAll(ms...); err != nil {
		t.Skipf("overlayfs not usable here: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(l.NewRoot, "etc/hostname"), []byte("changed"), 0o644))
	must(t, os.Remove(filepath.Join(l.NewRoot, "etc/gone"))) // a whiteout: a 0/0 char device
	must(t, os.MkdirAll(filepath.Join(l.NewRoot, "var/lib/new"), 0o700))
	for _, err := range s.Undo() {
		t.Fatal(err)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(old, "upper/etc/gone"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Fatalf("no whiteout in the upper, mode %o", st.Mode)
	}
	removed, err := PruneUppers(root, map[string]string{"a": "img/2"})
	must(t, err)
	if want := []string{old}; !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if _, err := os.Lstat(old); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", old, err)
	}
	if _, err := os.Stat(filepath.Join(lower, "etc/gone")); err != nil {
		t.Errorf("lower damaged: %v", err)
	}
}

// TestPrepareNoPrune: when the init cannot prove which image is in the
// slot (overridden or ambiguous devices), every upper is kept, the booted
// image's included, and FreshUpper is still reported.
func TestPrepareNoPrune(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"@overlay/a/old/upper/f": "", "@overlay/b/img2/upper/f": ""})
	var subvols []string
	r, err := Prepare(Plan{Root: root, FSType: Ext4, Slot: "a", ImageID: "new", NoPrune: true,
		Keep: map[string]string{"b": "img3"}, Sys: fakeSys(&subvols)})
	must(t, err)
	if len(r.Pruned) != 0 || !r.FreshUpper || r.UpperDir != filepath.Join(root, "@overlay/a/new") {
		t.Errorf("result %+v: want nothing pruned, a fresh upper a/new", r)
	}
	for _, p := range []string{"@overlay/a/old/upper/f", "@overlay/b/img2/upper/f"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}

// TestPruneWithoutWalk: as the init (root), a stale upper, overlayfs'
// mode-000 work/work and a deeply nested tree in it included, is removed
// in one pass by descriptor, without the walk that resolves every path
// from the top (quadratic in depth: 8,000 levels a user made in /tmp held
// a boot for minutes).
func TestPruneWithoutWalk(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	deep := filepath.Join(root, "@overlay/a/old/upper/tmp")
	for range 200 {
		deep = filepath.Join(deep, "d")
	}
	must(t, os.MkdirAll(deep, 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "@overlay/a/old/work/work"), 0o755))
	must(t, os.Chmod(filepath.Join(root, "@overlay/a/old/work/work"), 0))
	walks := 0
	defer func(f func(*os.Root, string) error) { chmodTree = f }(chmodTree)
	chmodTree = func(*os.Root, string) error { walks++; return nil }
	removed, err := PruneUppers(root, map[string]string{"a": "new"})
	if err != nil || len(removed) != 1 || walks != 0 {
		t.Fatalf("removed %v, %v, %d walks: want the old upper removed without a walk", removed, err, walks)
	}
	if _, err := os.Lstat(filepath.Join(root, "@overlay/a/old")); !os.IsNotExist(err) {
		t.Errorf("old upper: %v, want it gone", err)
	}
}

// TestPruneTrash: a stale upper is renamed out of the uppers' names before
// it is removed, so one whose removal stops part-way (here an immutable
// file whose flag is not cleared) is no upper any image finds again, unmerged; the next
// prune removes what is left.
func TestPruneTrash(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	stuck := filepath.Join(root, "@overlay/a/old/upper/etc/stuck")
	must(t, os.MkdirAll(filepath.Dir(stuck), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "@overlay/a/old/work"), 0o755))
	must(t, os.WriteFile(stuck, []byte("x"), 0o644))
	if out, err := exec.Command("chattr", "+i", stuck).CombinedOutput(); err != nil {
		t.Skipf("chattr +i here: %v: %s", err, out)
	}
	defer exec.Command("chattr", "-i", filepath.Join(root, "@overlay/a/.keel-trash-old/upper/etc/stuck")).Run()
	defer func(f func(*os.Root, string) error) { clearFlagsTree = f }(clearFlagsTree)
	clearFlagsTree = func(*os.Root, string) error { return nil } // a flag that stays
	_, err := PruneUppers(root, map[string]string{"a": "new"})
	if err == nil || !strings.Contains(err.Error(), "removed at the next prune") {
		t.Fatalf("prune with an immutable file: %v, want the failure named", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "@overlay/a/old")); !os.IsNotExist(err) {
		t.Errorf("the half-removed upper is still under its image's name: %v", err)
	}
	if OtherUppers(root, filepath.Join(root, "@overlay/a/new")) {
		t.Error("the trash counts as another image's upper")
	}
	must(t, exec.Command("chattr", "-i", filepath.Join(root, "@overlay/a/.keel-trash-old/upper/etc/stuck")).Run())
	if _, err := PruneUppers(root, map[string]string{"a": "new"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(root, "@overlay/a/.keel-trash-old")); !os.IsNotExist(err) {
		t.Errorf("trash after the next prune: %v, want it gone", err)
	}
}

// TestPruneImmutable: a stale upper holding an immutable file and an
// append-only directory (chattr +i, +a in the running system: overlayfs
// copies the flags up) is removed whole in one prune; the flags' EPERM
// used to stop it at every prune.
func TestPruneImmutable(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	old := filepath.Join(root, "@overlay/a/old")
	keys := filepath.Join(old, "upper/root/.ssh/authorized_keys")
	logs := filepath.Join(old, "upper/var-log")
	must(t, os.MkdirAll(filepath.Dir(keys), 0o700))
	must(t, os.MkdirAll(logs, 0o755))
	must(t, os.MkdirAll(filepath.Join(old, "work"), 0o755))
	must(t, os.WriteFile(keys, []byte("ssh-ed25519 AAA"), 0o600))
	must(t, os.WriteFile(filepath.Join(logs, "audit"), []byte("x"), 0o600))
	if out, err := exec.Command("chattr", "+i", keys).CombinedOutput(); err != nil {
		t.Skipf("chattr +i here: %v: %s", err, out)
	}
	must(t, exec.Command("chattr", "+a", logs).Run())
	defer exec.Command("chattr", "-R", "-i", "-a", filepath.Join(root, "@overlay")).Run()
	removed, err := PruneUppers(root, map[string]string{"a": "new"})
	if err != nil || len(removed) != 1 {
		t.Fatalf("prune: removed %v, %v: want the old upper removed", removed, err)
	}
	ents, err := os.ReadDir(filepath.Join(root, "@overlay/a"))
	if err != nil || len(ents) != 0 {
		t.Errorf("@overlay/a after the prune: %v, %v: want it empty (no trash left)", ents, err)
	}
}

// TestPruneImmutableHardLink: a file of a stale upper hard-linked from
// outside it (@var, on ext4) keeps its immutable flag: the prune fails,
// named, and the trash waits, rather than clear a flag of a file that
// stays. (A review found the first form cleared it.)
func TestPruneImmutableHardLink(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "@var/lib"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "@overlay/a/old/upper/etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "@overlay/a/old/work"), 0o755))
	outside := filepath.Join(root, "@var/lib/keep")
	must(t, os.WriteFile(outside, []byte("x"), 0o644))
	must(t, os.Link(outside, filepath.Join(root, "@overlay/a/old/upper/etc/keep")))
	if out, err := exec.Command("chattr", "+i", outside).CombinedOutput(); err != nil {
		t.Skipf("chattr +i here: %v: %s", err, out)
	}
	defer exec.Command("chattr", "-R", "-i", root).Run()
	if _, err := PruneUppers(root, map[string]string{"a": "new"}); err == nil || !strings.Contains(err.Error(), "removed at the next prune") {
		t.Errorf("prune: %v, want the failure named", err)
	}
	if out, err := exec.Command("lsattr", outside).CombinedOutput(); err != nil || !strings.Contains(strings.Fields(string(out))[0], "i") {
		t.Errorf("@var/lib/keep after the prune: lsattr %q, %v: want it still immutable", out, err)
	}
}
