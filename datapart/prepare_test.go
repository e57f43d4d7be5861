// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/mounts"
	"golang.org/x/sys/unix"
)

func TestPrepare(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), "var")
	write(t, src, map[string]string{"lib/x": "seed"})
	write(t, root, map[string]string{"@overlay/a/old/upper/f": "", "@overlay/b/img2/upper/f": ""})
	var subvols []string
	p := Plan{
		Root: root, FSType: Btrfs, ImageVar: src, Slot: "a", ImageID: "img3",
		// Keep names the booted slot with a stale id: the booted image wins.
		Keep: map[string]string{"a": "old", "b": "img2"},
		Sys:  fakeSys(&subvols),
	}
	r, err := Prepare(p)
	must(t, err)
	want := Result{
		Created:    []string{filepath.Join(root, Var), filepath.Join(root, Home)},
		Seeded:     true,
		Pruned:     []string{filepath.Join(root, "@overlay/a/old")},
		UpperDir:   filepath.Join(root, "@overlay/a/img3"),
		FreshUpper: true,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	if b, err := os.ReadFile(filepath.Join(root, "@var/lib/x")); err != nil || string(b) != "seed" {
		t.Errorf("@var not seeded: %q, %v", b, err)
	}
	if p.Keep["a"] != "old" {
		t.Error("Prepare changed the caller's Keep map")
	}
	must(t, os.MkdirAll(filepath.Join(r.UpperDir, "upper"), 0o755))
	r, err = Prepare(p)
	if err != nil || r.Seeded || len(r.Created) != 0 || len(r.Pruned) != 0 || r.FreshUpper {
		t.Errorf("second boot: %+v, %v", r, err)
	}
}

func TestPrepareWithoutImageID(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"@overlay/a/old/upper/f": ""})
	var subvols []string
	r, err := Prepare(Plan{Root: root, FSType: Ext4, Keep: map[string]string{"a": "new"}, Sys: fakeSys(&subvols)})
	must(t, err)
	if r.UpperDir != "" || r.Pruned != nil || r.FreshUpper || !r.Seeded || len(r.Created) != 2 {
		t.Errorf("result %+v", r)
	}
	if _, err := os.Stat(filepath.Join(root, "@overlay/a/old/upper/f")); err != nil {
		t.Error(err)
	}
}

func TestPrepareWarnsWhenNearlyFull(t *testing.T) {
	root := t.TempDir()
	var subvols []string
	sys := fakeSys(&subvols)
	sys.Statfs = func(_ string, st *unix.Statfs_t) error {
		st.Bsize, st.Blocks, st.Bavail = 4096, 1<<20, 100
		return nil
	}
	r, err := Prepare(Plan{Root: root, FSType: Btrfs, Slot: "a", ImageID: "x", Sys: sys})
	must(t, err)
	if want := []string{"data partition at " + root + " is nearly full: 0 MiB free of 4096 MiB"}; !reflect.DeepEqual(r.Warnings, want) {
		t.Errorf("warnings %q, want %q", r.Warnings, want)
	}
}

func TestPrepareFailures(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{"@var": "a file"})
	_, err := Prepare(Plan{Root: root, FSType: Ext4, Slot: "a", ImageID: "x"})
	if err == nil || !strings.Contains(err.Error(), "@var is a regular file") {
		t.Errorf("err = %v", err)
	}
	if _, err := Prepare(Plan{Root: root, FSType: Ext4, Slot: "A", ImageID: "x"}); err == nil {
		t.Error("bad slot accepted")
	}
	msg := VolatileWarning("/dev/vda6", err)
	if !strings.HasPrefix(msg, "DATA PARTITION /dev/vda6 NOT USED, BOOTING VOLATILE") || !strings.Contains(msg, err.Error()) || strings.Contains(msg, "corrupt") {
		t.Errorf("warning %q", msg)
	}
	for _, errno := range []error{unix.EBADMSG, unix.EUCLEAN} {
		err := fmt.Errorf("data partition: %w", &fs.PathError{Op: "lstat", Path: "/run/keel/data/@home", Err: errno})
		if msg := VolatileWarning("/dev/vda6", err); !strings.Contains(msg, err.Error()+" (the filesystem found its metadata corrupt: check it with e2fsck or btrfs check)") {
			t.Errorf("%v: warning %q: want the corruption named", errno, msg)
		}
	}
}

func TestPrepareRealBtrfs(t *testing.T) {
	mnt := loopMount(t, Btrfs)
	r, err := Prepare(Plan{Root: mnt, FSType: Btrfs, ImageVar: imageVar(t), Slot: "a", ImageID: "os/1"})
	must(t, err)
	if len(r.Created) != 3 || !r.Seeded {
		t.Errorf("result %+v", r)
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(mnt, "@var/lib/app/suid"), &st))
	if st.Mode&0o7777 != 0o4755 {
		t.Errorf("suid mode %o on btrfs", st.Mode&0o7777)
	}
	must(t, unix.Lstat(filepath.Join(mnt, "@var/lib/null"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device node: mode %o rdev %d", st.Mode, st.Rdev)
	}
}

func TestBindsAndMount(t *testing.T) {
	got := Binds("/run/keel/data", "/newroot")
	want := []mounts.Mount{
		{Source: "/run/keel/data/@var", Target: "/newroot/var", Flags: unix.MS_BIND},
		{Source: "/run/keel/data/@home", Target: "/newroot/home", Flags: unix.MS_BIND},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Binds = %v", got)
	}
	if m := Mount("/dev/vda6", Btrfs, DefaultRoot); m.Data != "subvolid=5" || m.Target != DefaultRoot {
		t.Errorf("btrfs mount %v", m)
	}
	if m := Mount("/dev/mapper/data", Ext4, DefaultRoot); m.Data != "errors=remount-ro" || m.FSType != Ext4 {
		t.Errorf("ext4 mount %v", m)
	}
}

func TestIdentify(t *testing.T) {
	img := func(off int, magic string) []byte {
		b := make([]byte, 128<<10)
		copy(b[off:], magic)
		return b
	}
	// second is a device starting with head, with a LUKS2 second header
	// at 16 KiB.
	second := func(head []byte) []byte {
		b := img(16<<10, "SKUL\xba\xbe\x00\x02")
		binary.BigEndian.PutUint64(b[16<<10+8:], 16<<10)
		binary.BigEndian.PutUint64(b[16<<10+256:], 16<<10)
		copy(b, head)
		return b
	}
	ext4 := img(1024+56, "\x53\xef")
	ext4[1024+96] = 0x40 // an ext4-only incompat feature (extents)
	for _, tc := range []struct {
		name     string
		data     []byte
		unlocked bool // the plaintext of an unlocked partition (IdentifyUnlocked)
		typ      string
		err      string
	}{
		{name: "btrfs", data: img(65536+64, "_BHRfS_M"), typ: Btrfs},
		{name: "ext4", data: ext4, typ: Ext4},
		{name: "luks", data: img(0, "LUKS\xba\xbe\x00\x02"), typ: LUKS},
		{name: "squashfs", data: img(0, "hsqs"), err: "data partition /dev/vda6: found squashfs, expected btrfs, ext4 or LUKS"},
		{name: "zeros", data: img(0, ""), err: "no filesystem found, expected btrfs, ext4 or LUKS"},
		// A LUKS2 volume whose first sectors were wiped, known by its
		// second header (it went volatile); not under a swap signature.
		{name: "luks2, first sector wiped", data: second(make([]byte, 4096)), typ: LUKS},
		{name: "swap holding a second header", data: second(append(make([]byte, 4086), "SWAPSPACE2"...)),
			err: "no filesystem found, expected btrfs, ext4 or LUKS"},
		// Inside the encryption: btrfs or ext4 only; a LUKS container is
		// named (it went to mount as a file system type), and no second
		// header is looked for in the file system's own bytes.
		{name: "unlocked btrfs", data: img(65536+64, "_BHRfS_M"), unlocked: true, typ: Btrfs},
		{name: "unlocked ext4", data: ext4, unlocked: true, typ: Ext4},
		{name: "luks inside luks", data: img(0, "LUKS\xba\xbe\x00\x02"), unlocked: true,
			err: "data partition /dev/vda6: the unlocked volume holds another LUKS container, expected btrfs or ext4 inside the encryption"},
		{name: "a second header inside luks", data: second(make([]byte, 4096)), unlocked: true,
			err: "data partition /dev/vda6: no filesystem found, expected btrfs or ext4 inside the encryption"},
		{name: "squashfs inside luks", data: img(0, "hsqs"), unlocked: true, err: "found squashfs, expected btrfs or ext4 inside the encryption"},
	} {
		identify := Identify
		if tc.unlocked {
			identify = IdentifyUnlocked
		}
		fs, err := identify("/dev/vda6", bytes.NewReader(tc.data))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || fs.Type != tc.typ {
			t.Errorf("%s: got %+v, %v", tc.name, fs, err)
		}
	}
	// The first sectors unreadable (a bad sector, not a wipe): known by
	// the second header all the same; a device that fails every read is
	// its I/O error, named.
	if fs, err := Identify("/dev/vda6", unreadableStart{bytes.NewReader(second(nil)), 4096}); err != nil || fs.Type != LUKS {
		t.Errorf("luks2, first sectors unreadable: got %+v, %v; want LUKS", fs, err)
	}
	if _, err := Identify("/dev/vda6", unreadableStart{bytes.NewReader(second(nil)), 1 << 40}); err == nil ||
		!strings.Contains(err.Error(), "data partition /dev/vda6") || !strings.Contains(err.Error(), "input/output error") {
		t.Errorf("a device failing every read: %v; want the I/O error, naming the device", err)
	}
	_, err := Identify("/dev/vda6", bytes.NewReader(nil))
	if !errors.Is(err, devices.ErrUnknownFS) {
		t.Errorf("empty device: %v", err)
	}
	if _, err := Probe(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "data partition") {
		t.Errorf("missing device: %v", err)
	}
}

// NewUpper interrupted after any step leaves no upper; the next Create
// removes the leftover and gives the same upper as an uninterrupted one.
func TestNewUpperPowerCut(t *testing.T) {
	fill := func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "upper", "marker"), []byte("x"), 0o644)
	}
	ref := filepath.Join(t.TempDir(), "@overlay", "a", "img")
	must(t, NewUpper{Dir: ref, Fill: fill}.Create())
	want := snapshot(t, ref)
	cut := errors.New("power cut")
	for k := 1; ; k++ {
		dir := filepath.Join(t.TempDir(), "@overlay", "a", "img")
		n := 0
		err := NewUpper{Dir: dir, Fill: fill, Step: func(string) error {
			if n++; n == k {
				return cut
			}
			return nil
		}}.Create()
		if err == nil {
			if k < 6 {
				t.Fatalf("only %d steps, want 6", k-1)
			}
			break
		}
		if _, serr := os.Lstat(dir); k < 5 && !os.IsNotExist(serr) {
			t.Fatalf("cut after step %d: %s exists (%v)", k, dir, serr)
		}
		if k >= 5 { // renamed: the upper is complete, the flush of its parent was cut
			if got := snapshot(t, dir); !reflect.DeepEqual(got, want) {
				t.Fatalf("cut after the rename: %v, want %v", got, want)
			}
			continue
		}
		must(t, NewUpper{Dir: dir, Fill: fill}.Create())
		if got := snapshot(t, dir); !reflect.DeepEqual(got, want) {
			t.Errorf("cut after step %d, then created again: %v, want %v", k, got, want)
		}
		if _, err := os.Lstat(TempUpperDir(dir)); !os.IsNotExist(err) {
			t.Errorf("cut after step %d: the temporary directory is still there", k)
		}
	}
}

func TestNewUpperRefusesExisting(t *testing.T) {
	dir := t.TempDir()
	if err := (NewUpper{Dir: dir}).Create(); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("Create over an existing upper: %v", err)
	}
	if name := filepath.Base(TempUpperDir(dir)); !strings.HasPrefix(name, ".") {
		t.Errorf("temporary name %q does not start with '.'", name)
	}
	if _, err := DecodeImageID(filepath.Base(TempUpperDir("/x/debian%2F12"))); err == nil {
		t.Error("the temporary name decodes as an image id: pruning would take it for an upper")
	}
}

// A leftover temporary directory with a mode-000 directory inside (as a
// merge of a locked-down /etc may leave) is removed.
func TestNewUpperRemovesLeftover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "img")
	tmp := TempUpperDir(dir)
	must(t, os.MkdirAll(filepath.Join(tmp, "upper", "etc", "locked"), 0o755))
	must(t, os.Chmod(filepath.Join(tmp, "upper", "etc", "locked"), 0))
	must(t, NewUpper{Dir: dir}.Create())
	got := snapshot(t, dir)
	if _, ok := got["upper/etc"]; ok || len(got) != 3 {
		t.Errorf("upper after a leftover: %v, want empty upper/ and work/", got)
	}
}

// TestNewUpperFailureRemovesTemp: a fill that fails (a full file system)
// leaves nothing of its copy for the rest of the boot, read-only
// directories and all; the error is the fill's. It used to stay until the
// next Create, the space whose lack failed the merge still taken (found
// by a hunting helper).
func TestNewUpperFailureRemovesTemp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "v2")
	err := NewUpper{Dir: dir, Fill: func(tmp string) error {
		must(t, os.WriteFile(filepath.Join(tmp, "upper", "big"), make([]byte, 1<<20), 0o644))
		must(t, os.MkdirAll(filepath.Join(tmp, "upper", "etc", "locked"), 0o755))
		must(t, os.Chmod(filepath.Join(tmp, "upper", "etc", "locked"), 0))
		return unix.ENOSPC
	}}.Create()
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "fill ") {
		t.Fatalf("Create: %v, want the fill's ENOSPC", err)
	}
	for _, p := range []string{TempUpperDir(dir), dir} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after the failure: %v", p, err)
		}
	}
}

// An empty upper made with NoFlush skips only the flushes.
func TestNewUpperNoFlush(t *testing.T) {
	var steps []string
	dir := filepath.Join(t.TempDir(), "a", "img")
	must(t, NewUpper{Dir: dir, NoFlush: true, Step: func(what string) error {
		steps = append(steps, strings.Fields(what)[0])
		return nil
	}}.Create())
	if want := []string{"remove", "make", "fill", "rename"}; !reflect.DeepEqual(steps, want) {
		t.Errorf("steps %v, want %v", steps, want)
	}
	if got := snapshot(t, dir); len(got) != 3 {
		t.Errorf("upper %v, want empty upper/ and work/", got)
	}
}

// TestCheckUpperPath: an upper is used, and a merge reads it, only through
// directories: a symlink or a file anywhere from @overlay down to its
// upper/etc and work/ is refused, naming it; absent parts are fine (a
// fresh upper). Prepare refuses the booted image's upper so (the boot goes
// volatile) before touching the data partition.
func TestCheckUpperPath(t *testing.T) {
	for _, tc := range []struct {
		name, link, file, err string
	}{
		{name: "fine"},
		{name: "absent", err: ""},
		{name: "slot link", link: "@overlay/a", err: "@overlay/a is a symlink, expected a directory"},
		{name: "image link", link: "@overlay/a/img", err: "@overlay/a/img is a symlink"},
		{name: "upper link", link: "@overlay/a/img/upper", err: "img/upper is a symlink"},
		{name: "etc link", link: "@overlay/a/img/upper/etc", err: "upper/etc is a symlink"},
		{name: "work file", file: "@overlay/a/img/work", err: "img/work is a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			elsewhere := t.TempDir()
			if tc.name != "absent" {
				must(t, os.MkdirAll(filepath.Join(root, "@overlay/a/img/upper/etc"), 0o755))
				must(t, os.MkdirAll(filepath.Join(root, "@overlay/a/img/work"), 0o755))
			}
			for _, p := range []string{tc.link, tc.file} {
				if p != "" {
					must(t, os.RemoveAll(filepath.Join(root, p)))
				}
			}
			if tc.link != "" {
				must(t, os.Symlink(elsewhere, filepath.Join(root, tc.link)))
			}
			if tc.file != "" {
				must(t, os.WriteFile(filepath.Join(root, tc.file), nil, 0o644))
			}
			err := CheckUpperPath(root, filepath.Join(root, "@overlay/a/img"))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("CheckUpperPath: %v, want %q", err, tc.err)
			}
			if tc.link == "" {
				return
			}
			var subvols []string
			_, err = Prepare(Plan{Root: root, FSType: Btrfs, Slot: "a", ImageID: "img", Sys: fakeSys(&subvols)})
			if err == nil || !strings.Contains(err.Error(), "is a symlink") {
				t.Errorf("Prepare: %v, want the symlink refused", err)
			}
			if entries, _ := os.ReadDir(elsewhere); len(entries) > 0 || len(subvols) > 0 {
				t.Errorf("Prepare wrote: %v, subvolumes %v", entries, subvols)
			}
		})
	}
}

// unreadableStart is a device whose reads before byte end fail with EIO.
type unreadableStart struct {
	r   io.ReaderAt
	end int64
}

func (u unreadableStart) ReadAt(p []byte, off int64) (int, error) {
	if off < u.end {
		return 0, errors.New("input/output error")
	}
	return u.r.ReadAt(p, off)
}
