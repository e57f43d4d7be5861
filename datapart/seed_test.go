// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// imageVar builds a /var with every kind of entry SeedVar must keep.
func imageVar(t *testing.T) string {
	t.Helper()
	v := filepath.Join(t.TempDir(), "var")
	write(t, v, map[string]string{
		"lib/dpkg/status": "Package: keel\n",
		"log/":            "",
		"cache/apt/":      "",
		"lib/app/data":    "data",
	})
	must(t, os.Mkdir(filepath.Join(v, "tmp"), 0o755))
	must(t, unix.Chmod(filepath.Join(v, "tmp"), 0o1777))
	must(t, os.Chmod(filepath.Join(v, "cache/apt"), 0o700))
	must(t, os.WriteFile(filepath.Join(v, "lib/app/suid"), []byte("#!"), 0o755))
	must(t, os.Chown(filepath.Join(v, "lib/app"), 1000, 1001))
	must(t, os.Chown(filepath.Join(v, "lib/app/data"), 1000, 1001))
	must(t, unix.Chmod(filepath.Join(v, "lib/app/suid"), 0o4755))
	// group-writable: the umask clears that bit when the copy is created
	must(t, os.WriteFile(filepath.Join(v, "lib/shared"), []byte("s"), 0o664))
	must(t, unix.Chmod(filepath.Join(v, "lib/shared"), 0o664))
	must(t, os.Symlink("/run", filepath.Join(v, "run")))
	must(t, os.Symlink("../nowhere", filepath.Join(v, "lib/dangling")))
	must(t, os.Link(filepath.Join(v, "lib/app/data"), filepath.Join(v, "lib/app/hardlink")))
	must(t, unix.Mkfifo(filepath.Join(v, "lib/fifo"), 0o620))
	must(t, unix.Mknod(filepath.Join(v, "lib/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Lchown(filepath.Join(v, "run"), 1000, 1000))
	if err := unix.Lsetxattr(filepath.Join(v, "lib/app/data"), "user.keel", []byte("x"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC) // nanoseconds: kept too
	ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
	_ = filepath.WalkDir(v, func(p string, _ os.DirEntry, _ error) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	return v
}

// meta describes every entry under root by everything SeedVar preserves.
func meta(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		d := fmt.Sprintf("mode=%o uid=%d gid=%d mtime=%d.%09d rdev=%d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec, st.Mtim.Nsec, st.Rdev)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, _ := os.ReadFile(p)
			d += " content=" + string(b)
			if first, ok := inodes[st.Ino]; ok {
				d += " linked-to=" + first
			}
			inodes[st.Ino] = rel
			x := make([]byte, 16)
			if n, err := unix.Lgetxattr(p, "user.keel", x); err == nil {
				d += " xattr=" + string(x[:n])
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			d += " target=" + target
		}
		if rel != "." {
			out[rel] = d
		}
		return nil
	})
	must(t, err)
	return out
}

func TestSeedVarCopiesEverythingOnce(t *testing.T) {
	requireRoot(t)
	src := imageVar(t)
	dst := t.TempDir()
	seeded, err := SeedVar(src, dst, nil)
	if err != nil || !seeded {
		t.Fatalf("SeedVar = %v, %v; want true", seeded, err)
	}
	want, got := meta(t, src), meta(t, dst)
	delete(got, SeedMarker)
	for p, d := range want {
		if got[p] != d {
			t.Errorf("%s:\n got %s\nwant %s", p, got[p], d)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s", p)
		}
	}
	// Later boots leave @var alone, even when the image's /var changed.
	must(t, os.WriteFile(filepath.Join(src, "lib/new-in-image"), nil, 0o644))
	must(t, os.WriteFile(filepath.Join(dst, "log/syslog"), []byte("mine"), 0o644))
	seeded, err = SeedVar(src, dst, nil)
	if err != nil || seeded {
		t.Fatalf("second SeedVar = %v, %v; want false", seeded, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "lib/new-in-image")); !os.IsNotExist(err) {
		t.Errorf("seeded twice: %v", err)
	}
}

// TestSeedVarRetriesAfterCrash starts from what a crash in the middle of
// moving entries leaves: the temporary copy, some entries moved, no marker.
func TestSeedVarRetriesAfterCrash(t *testing.T) {
	src := filepath.Join(t.TempDir(), "var")
	write(t, src, map[string]string{"lib/a": "image a", "log/b": "image b", "spool/": ""})
	dst := t.TempDir()
	write(t, dst, map[string]string{
		seedTemp + "/spool/half": "half copied",
		seedTemp + "/log/b":      "image b",
		"lib/a":                  "moved, then changed by the user",
		"mine/file":              "a user's own entry",
	})
	seeded, err := SeedVar(src, dst, nil)
	if err != nil || !seeded {
		t.Fatalf("SeedVar = %v, %v", seeded, err)
	}
	got := snapshot(t, dst)
	for p, want := range map[string]string{
		"lib/a":     "moved, then changed by the user",
		"log/b":     "image b",
		"mine/file": "a user's own entry",
	} {
		if !strings.HasSuffix(got[p], " "+want) {
			t.Errorf("%s = %q, want content %q", p, got[p], want)
		}
	}
	if _, ok := got["spool"]; !ok {
		t.Error("spool not seeded")
	}
	for p := range got {
		if strings.HasPrefix(p, seedTemp) || strings.Contains(p, "half") {
			t.Errorf("leftover %s", p)
		}
	}
	if _, ok := got[SeedMarker]; !ok {
		t.Error("no marker")
	}
}

func TestSeedVarEdgeCases(t *testing.T) {
	t.Run("image without /var", func(t *testing.T) {
		dst := t.TempDir()
		seeded, err := SeedVar(filepath.Join(t.TempDir(), "var"), dst, nil)
		if err != nil || !seeded {
			t.Fatalf("SeedVar = %v, %v", seeded, err)
		}
		entries, _ := os.ReadDir(dst)
		if len(entries) != 1 || entries[0].Name() != SeedMarker {
			t.Errorf("@var has %v, want only the marker", entries)
		}
	})
	t.Run("image /var is a file", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "var")
		must(t, os.WriteFile(src, nil, 0o644))
		dst := t.TempDir()
		if _, err := SeedVar(src, dst, nil); err == nil || !strings.Contains(err.Error(), "is not a directory") {
			t.Errorf("err = %v", err)
		}
		if _, err := os.Lstat(filepath.Join(dst, SeedMarker)); !os.IsNotExist(err) {
			t.Error("marker written after a failure")
		}
	})
	t.Run("@var missing", func(t *testing.T) {
		if _, err := SeedVar(t.TempDir(), filepath.Join(t.TempDir(), "nope"), nil); err == nil {
			t.Error("no error")
		}
	})
}

// TestSeedVarNeverFollowsSymlinks: a symlink left at the temporary path (to
// a directory inside @var, or outside the data partition) is removed as a
// symlink; nothing it points to is changed (the mode of every directory is
// kept, nothing is deleted). A symlinked @var is refused.
func TestSeedVarNeverFollowsSymlinks(t *testing.T) {
	src := filepath.Join(t.TempDir(), "var")
	write(t, src, map[string]string{"lib/a": "image a"})
	outside := t.TempDir()
	write(t, outside, map[string]string{"secret/file": "not the init's", "dir/": ""})
	for name, target := range map[string]string{
		"inside":  "keep",
		"outside": outside,
	} {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			write(t, dst, map[string]string{"keep/sub/file": "the user's", "keep/other/": ""})
			must(t, os.Symlink(target, filepath.Join(dst, seedTemp)))
			beforeIn, beforeOut := snapshot(t, filepath.Join(dst, "keep")), snapshot(t, outside)
			seeded, err := SeedVar(src, dst, nil)
			if err != nil || !seeded {
				t.Fatalf("SeedVar = %v, %v; want seeded", seeded, err)
			}
			for what, pair := range map[string][2]map[string]string{
				"@var/keep": {beforeIn, snapshot(t, filepath.Join(dst, "keep"))},
				"outside":   {beforeOut, snapshot(t, outside)},
			} {
				before, after := pair[0], pair[1]
				for p, d := range before {
					if after[p] != d {
						t.Errorf("%s/%s changed through the symlink: %q, was %q", what, p, after[p], d)
					}
				}
			}
			if fi, err := os.Lstat(filepath.Join(dst, seedTemp)); err == nil {
				t.Errorf("%s left behind: %v", seedTemp, fi.Mode())
			}
			if got := snapshot(t, dst)["lib/a"]; !strings.HasSuffix(got, " image a") {
				t.Errorf("lib/a = %q, want the image's", got)
			}
		})
	}
	t.Run("@var is a symlink", func(t *testing.T) {
		real := t.TempDir()
		link := filepath.Join(t.TempDir(), "@var")
		must(t, os.Symlink(real, link))
		if _, err := SeedVar(src, link, nil); err == nil || !strings.Contains(err.Error(), "expected a directory") {
			t.Errorf("err = %v, want a refusal", err)
		}
		if entries, _ := os.ReadDir(real); len(entries) != 0 {
			t.Errorf("seeded through the symlink: %v", entries)
		}
	})
}

// TestSeedVarReportsProgress: seeding calls progress for every regular
// file and directory it copies (the init renews its watchdog lease there),
// from the copying goroutines.
func TestSeedVarReportsProgress(t *testing.T) {
	requireRoot(t)
	src := imageVar(t)
	inodes := map[uint64]bool{} // a hard link is made, not copied
	must(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		var st unix.Stat_t
		if err == nil && (d.Type().IsRegular() || d.IsDir()) && unix.Lstat(p, &st) == nil {
			inodes[st.Ino] = true
		}
		return err
	}))
	want := len(inodes)
	var calls atomic.Int64
	if _, err := SeedVar(src, t.TempDir(), func() { calls.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got < int64(want) {
		t.Errorf("progress called %d times for %d files and directories", got, want)
	}
}
