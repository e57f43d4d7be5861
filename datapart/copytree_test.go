// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCopyFile: a file larger than the buffer arrives whole, with the
// permission bits asked for, ticking once per full buffer (the watchdog
// lease of a copy of one huge file); an existing destination or a missing
// source fails naming the path.
func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	want := bytes.Repeat([]byte("0123456789abcdef\n"), 20000) // 340 KB
	if err := os.WriteFile(src, want, 0o600); err != nil {
		t.Fatal(err)
	}
	var now unix.Stat_t
	ticks := 0
	err := copyFile(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, 0o640, make([]byte, 4096), func() { ticks++ }, func(_, _ int, st *unix.Stat_t) error { now = *st; return nil })
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
	if want := len(want) / 4096; ticks != want {
		t.Errorf("%d ticks, want %d (one per full 4096-byte buffer)", ticks, want)
	}
	if err := copyFile(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, 0o640, make([]byte, 4096), nil, noMeta); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), dst) {
		t.Errorf("onto an existing file: %v, want EEXIST naming %s", err, dst)
	}
	missing := filepath.Join(dir, "missing")
	if err := copyFile(unix.AT_FDCWD, missing, unix.AT_FDCWD, filepath.Join(dir, "x"), 0o644, make([]byte, 4096), nil, noMeta); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("from a missing file: %v, want ENOENT naming %s", err, missing)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(unix.AT_FDCWD, link, unix.AT_FDCWD, filepath.Join(dir, "y"), 0o644, make([]byte, 4096), nil, noMeta); err == nil {
		t.Error("copied through a symlink: the source must be the regular file the walk saw")
	}
}

func noMeta(_, _ int, _ *unix.Stat_t) error { return nil }

// TestCopyFileKeepsHoles: whole 4 KiB blocks of zeros become holes (the
// image's SquashFS reads a sparse file's holes back as zeros), whatever
// the buffer; the content is the same byte for byte, trailing hole, short
// zero tail and all. A hole was written out in full (found by a
// hunting helper: lastlog after a useradd of a high uid).
func TestCopyFileKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("x"), 5000)
	for _, c := range []struct {
		name  string
		write func(f *os.File) error
	}{
		{"all hole", func(f *os.File) error { return f.Truncate(8 << 20) }},
		{"data, hole, data", func(f *os.File) error {
			if _, err := f.WriteAt(data, 0); err != nil {
				return err
			}
			_, err := f.WriteAt(data, 4<<20)
			return err
		}},
		{"data then trailing hole", func(f *os.File) error {
			if _, err := f.Write(data); err != nil {
				return err
			}
			return f.Truncate(2 << 20)
		}},
		{"zeros written, short tail", func(f *os.File) error {
			_, err := f.Write(append(make([]byte, 3*4096), 0, 0, 0))
			return err
		}},
		{"no zeros", func(f *os.File) error { _, err := f.Write(data); return err }},
	} {
		for _, bufSize := range []int{4096, 3 * 4096, 128 << 10} {
			t.Run(fmt.Sprintf("%s/%d", c.name, bufSize), func(t *testing.T) {
				src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
				_ = os.Remove(src)
				_ = os.Remove(dst)
				f, err := os.Create(src)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.write(f); err != nil {
					t.Fatal(err)
				}
				f.Close()
				if err := copyFile(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, 0o644, make([]byte, bufSize), nil, noMeta); err != nil {
					t.Fatal(err)
				}
				want, _ := os.ReadFile(src)
				got, err := os.ReadFile(dst)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("copy differs (%d bytes, want %d): %v", len(got), len(want), err)
				}
				var st unix.Stat_t
				if err := unix.Stat(dst, &st); err != nil {
					t.Fatal(err)
				}
				// Allocated: the non-zero data, rounded to blocks, plus
				// what the file system adds (a block or two).
				nonZero := int64(len(bytes.ReplaceAll(want, []byte{0}, nil)))
				if most := nonZero + 6*4096; st.Blocks*512 > most {
					t.Errorf("%d bytes allocated for %d bytes of data, want at most %d: the zeros were written", st.Blocks*512, nonZero, most)
				}
			})
		}
	}
}

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

// TestCopyTreeClosesDescriptors: the directories the copy holds open for
// their files' copies are all closed when it returns, after a success and
// after a failure.
func TestCopyTreeClosesDescriptors(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	for d := range 5 {
		dir := filepath.Join(src, fmt.Sprintf("d%d/sub", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 20 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", f)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	openFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(ents)
	}
	before := openFDs()
	dst := filepath.Join(t.TempDir(), "dst")
	if err := copyTree(src, dst, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "d4/sub/f19")); err != nil || string(got) != "x" {
		t.Fatalf("copied file: %q, %v", got, err)
	}
	if after := openFDs(); after != before {
		t.Errorf("%d descriptors open after a copy, %d before", after, before)
	}
	// A destination that exists fails at once.
	if err := copyTree(src, dst, nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("onto an existing tree: %v, want EEXIST", err)
	}
	if after := openFDs(); after != before {
		t.Errorf("%d descriptors open after a failed copy, %d before", after, before)
	}
}

// fakeXattrs is an xattrNode in memory; refuse lists the names it answers
// setXattr with ENOTSUP (a namespace the file system lacks).
type fakeXattrs struct {
	names  []string
	vals   map[string]string
	refuse map[string]bool
}

func (f *fakeXattrs) listXattrs(b []byte) (int, error) {
	list := strings.Join(f.names, "\x00") + "\x00"
	if b == nil {
		return len(list), nil
	}
	return copy(b, list), nil
}

func (f *fakeXattrs) getXattr(name string, b []byte) (int, error) {
	v := f.vals[name]
	if b == nil {
		return len(v), nil
	}
	return copy(b, v), nil
}

func (f *fakeXattrs) setXattr(name string, val []byte) error {
	if f.refuse[name] {
		return unix.ENOTSUP
	}
	f.vals[name] = string(val)
	return nil
}

// TestCopyXattrsSkipsUnsupported: a name the destination does not support
// is left out and the names after it are still copied (the first such name
// used to end the copy, and the seed's marker made the loss permanent).
func TestCopyXattrsSkipsUnsupported(t *testing.T) {
	src := &fakeXattrs{names: []string{"system.posix_acl_access", "user.a", "security.selinux"},
		vals: map[string]string{"system.posix_acl_access": "acl", "user.a": "1", "security.selinux": "label"}}
	dst := &fakeXattrs{vals: map[string]string{}, refuse: map[string]bool{"system.posix_acl_access": true}}
	if err := copyXattrs(src, dst); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"user.a": "1", "security.selinux": "label"}
	if !maps.Equal(dst.vals, want) {
		t.Errorf("copied %v, want %v", dst.vals, want)
	}
}

// FuzzCopyFD: whatever the bytes and the buffer, the copy with holes reads
// back the same, size included.
func FuzzCopyFD(f *testing.F) {
	f.Add([]byte("abc"), uint16(1), uint16(0))
	f.Add(make([]byte, 3*4096+5), uint16(1), uint16(2))
	f.Add(append(make([]byte, 8192), 'x'), uint16(3), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, blocks uint16, zeroBlocks uint16) {
		// Zero blocks around the data, so that holes come up often.
		content := append(append(make([]byte, int(zeroBlocks%8)*4096), data...), make([]byte, int(zeroBlocks%3)*4096)...)
		dir := t.TempDir()
		src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
		if err := os.WriteFile(src, content, 0o644); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, (int(blocks%4)+1)*4096)
		if err := copyFile(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, 0o644, buf, nil, noMeta); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("copy of %d bytes differs: %d bytes back, %v", len(content), len(got), err)
		}
	})
}

// TestCopyTreeStaysOnItsFileSystem: like cp -x, what is mounted inside the
// source (a directory, a file bind-mounted from another file system) is
// not copied; the rest is.
func TestCopyTreeStaysOnItsFileSystem(t *testing.T) {
	requireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	other := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "mnt"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "keep"), []byte("k"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "over"), []byte("under"), 0o644))
	if err := unix.Mount("tmpfs", other, "tmpfs", 0, ""); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(other, unix.MNT_DETACH) })
	must(t, os.WriteFile(filepath.Join(other, "file"), []byte("other"), 0o644))
	must(t, unix.Mount(filepath.Join(other, "file"), filepath.Join(src, "over"), "", unix.MS_BIND, ""))
	t.Cleanup(func() { unix.Unmount(filepath.Join(src, "over"), unix.MNT_DETACH) })
	must(t, unix.Mount("tmpfs", filepath.Join(src, "mnt"), "tmpfs", 0, ""))
	t.Cleanup(func() { unix.Unmount(filepath.Join(src, "mnt"), unix.MNT_DETACH) })
	must(t, os.WriteFile(filepath.Join(src, "mnt/inside"), []byte("i"), 0o644))
	var a, b unix.Stat_t
	must(t, unix.Stat(src, &a))
	must(t, unix.Stat(other, &b))
	if a.Dev == b.Dev {
		t.Skip("the tmpfs has the source's device number")
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if err := copyTree(src, dst, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dst, "keep")); err != nil || string(got) != "k" {
		t.Errorf("keep: %q, %v", got, err)
	}
	for _, p := range []string{"over", "mnt"} {
		if _, err := os.Lstat(filepath.Join(dst, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s (another file system) copied: %v", p, err)
		}
	}
}
