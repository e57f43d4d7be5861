// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCopyFile: a file larger than the buffer arrives whole, with the
// permission bits asked for; an existing destination or a missing source
// fails naming the path.
func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	want := bytes.Repeat([]byte("0123456789abcdef\n"), 20000) // 340 KB
	if err := os.WriteFile(src, want, 0o600); err != nil {
		t.Fatal(err)
	}
	var now unix.Stat_t
	err := copyFile(src, dst, 0o640, make([]byte, 4096), func(_, _ int, st *unix.Stat_t) error { now = *st; return nil })
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("copy differs (%d bytes, want %d): %v", len(got), len(want), err)
	}
	if now.Size != int64(len(want)) || now.Mode&0o777 != 0o640&^uint32(umask(t)) {
		t.Errorf("copy stat: size %d mode %o", now.Size, now.Mode&0o777)
	}
	if err := copyFile(src, dst, 0o640, make([]byte, 4096), noMeta); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), dst) {
		t.Errorf("onto an existing file: %v, want EEXIST naming %s", err, dst)
	}
	missing := filepath.Join(dir, "missing")
	if err := copyFile(missing, filepath.Join(dir, "x"), 0o644, make([]byte, 4096), noMeta); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("from a missing file: %v, want ENOENT naming %s", err, missing)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(link, filepath.Join(dir, "y"), 0o644, make([]byte, 4096), noMeta); err == nil {
		t.Error("copied through a symlink: the source must be the regular file the walk saw")
	}
}

func noMeta(_, _ int, _ *unix.Stat_t) error { return nil }

func umask(t *testing.T) int {
	t.Helper()
	f := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(f, nil, 0o777); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	return 0o777 &^ int(fi.Mode().Perm())
}
