// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// loopMount makes a filesystem of fstype in a file and mounts it through a
// loop device; it skips when the host cannot.
func loopMount(t *testing.T, fstype string) string {
	t.Helper()
	requireRoot(t)
	fss, err := os.ReadFile("/proc/filesystems")
	if err == nil && !strings.Contains(string(fss), "\t"+fstype+"\n") {
		// A stock kernel has btrfs as a module nobody loaded yet: load
		// it rather than skip every test that needs it.
		_ = exec.Command("modprobe", fstype).Run()
		fss, err = os.ReadFile("/proc/filesystems")
	}
	if err != nil || !strings.Contains(string(fss), "\t"+fstype+"\n") {
		t.Skipf("the host kernel has no %s (/proc/filesystems, after modprobe %s)", fstype, fstype)
	}
	mkfs, err := exec.LookPath("mkfs." + fstype)
	if err != nil {
		t.Skipf("mkfs.%s not installed", fstype)
	}
	img := filepath.Join(t.TempDir(), "data.img")
	must(t, os.WriteFile(img, nil, 0o600))
	must(t, os.Truncate(img, 256<<20))
	if out, err := exec.Command(mkfs, "-q", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.%s: %v\n%s", fstype, err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount %s here: %v\n%s", fstype, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	return mnt
}

func TestEnsureLayoutRealBtrfs(t *testing.T) {
	btrfs, err := exec.LookPath("btrfs")
	if err != nil {
		t.Skip("btrfs-progs not installed")
	}
	mnt := loopMount(t, Btrfs)
	// A subvolume made beforehand, with content, is used as it is.
	if out, err := exec.Command(btrfs, "-q", "subvolume", "create", filepath.Join(mnt, Home)).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v\n%s", err, out)
	}
	write(t, mnt, map[string]string{"@home/alice/notes": "mine"})

	created, err := EnsureLayout(mnt, Btrfs, Kernel())
	must(t, err)
	if want := []string{filepath.Join(mnt, Var), filepath.Join(mnt, Overlay)}; !reflect.DeepEqual(created, want) {
		t.Errorf("created %v, want %v", created, want)
	}
	out, err := exec.Command(btrfs, "subvolume", "list", mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("btrfs subvolume list: %v\n%s", err, out)
	}
	for _, name := range []string{Var, Home, Overlay} {
		if !strings.Contains(string(out), "path "+name+"\n") {
			t.Errorf("btrfs subvolume list has no %s:\n%s", name, out)
		}
		// The root directory of every btrfs subvolume is inode 256.
		fi, err := os.Stat(filepath.Join(mnt, name))
		must(t, err)
		if ino := fi.Sys().(*syscall.Stat_t).Ino; ino != 256 {
			t.Errorf("%s has inode %d, not a subvolume root (256)", name, ino)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "@home/alice/notes")); err != nil || string(b) != "mine" {
		t.Errorf("@home content: %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(mnt, Overlay))
	must(t, err)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("@overlay mode %v, want 0700", fi.Mode().Perm())
	}
	again, err := EnsureLayout(mnt, Btrfs, Kernel())
	if err != nil || len(again) != 0 {
		t.Errorf("second run created %v, %v; want nothing", again, err)
	}
}

func TestEnsureLayoutRealExt4(t *testing.T) {
	mnt := loopMount(t, Ext4)
	created, err := EnsureLayout(mnt, Ext4, Kernel())
	must(t, err)
	if len(created) != 3 {
		t.Errorf("created %v, want 3 directories", created)
	}
	if _, err := os.Stat(filepath.Join(mnt, "lost+found")); err != nil {
		t.Errorf("lost+found: %v", err)
	}
}

// A snapshot holds what its subvolume held, and a write to either never
// shows in the other (what an in-place /etc merge relies on).
func TestSnapshotRealBtrfs(t *testing.T) {
	mnt := loopMount(t, Btrfs)
	must(t, CreateSubvolume(mnt, "old"))
	write(t, mnt, map[string]string{"old/upper/etc/hostname": "box"})
	must(t, Snapshot(filepath.Join(mnt, "old"), mnt, "new"))
	must(t, os.WriteFile(filepath.Join(mnt, "new/upper/etc/hostname"), []byte("new"), 0o644))
	must(t, os.WriteFile(filepath.Join(mnt, "old/upper/etc/motd"), []byte("old"), 0o644))
	if b, err := os.ReadFile(filepath.Join(mnt, "old/upper/etc/hostname")); err != nil || string(b) != "box" {
		t.Errorf("old hostname after a write to the snapshot: %q, %v; want box", b, err)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "new/upper/etc/motd")); !os.IsNotExist(err) {
		t.Errorf("a file made in the subvolume after the snapshot shows in it: %v", err)
	}
	must(t, os.Mkdir(filepath.Join(mnt, "plain"), 0o755))
	if err := Snapshot(filepath.Join(mnt, "plain"), mnt, "x"); err == nil || !strings.Contains(err.Error(), "plain") {
		t.Errorf("snapshot of a plain directory: %v, want an error naming it", err)
	}
	if err := Snapshot(filepath.Join(mnt, "old"), mnt, "a/b"); err == nil || !strings.Contains(err.Error(), "expected one path component") {
		t.Errorf("snapshot named a/b: %v", err)
	}
}

// On btrfs a new upper is a subvolume; one made From it starts as its
// snapshot cut down to upper/etc, with an empty work/, and the old upper
// is left exactly as it was. A power cut after any step, then Create
// again, gives the same upper.
func TestNewUpperFromRealBtrfs(t *testing.T) {
	mnt := loopMount(t, Btrfs)
	old := filepath.Join(mnt, "@overlay", "a", "v1")
	must(t, NewUpper{Dir: old}.Create())
	if ok, err := IsSubvolume(old); !ok || err != nil {
		t.Fatalf("a new upper on btrfs is not a subvolume: %v, %v", ok, err)
	}
	write(t, old, map[string]string{
		"upper/etc/hostname": "box", "upper/etc/ssh/": "", "upper/root/.bash_history": "ls",
		"work/work/#1": "", EtcMergeFile: "{}",
	})
	must(t, os.Chmod(filepath.Join(old, "work", "work"), 0))
	must(t, syscall.Setxattr(filepath.Join(old, "upper"), "trusted.overlay.impure", []byte("y"), 0))
	before := snapshot(t, old)
	fill := func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "upper", "etc", "motd"), []byte("merged"), 0o644)
	}
	want := map[string]string{
		".": "drwxr-xr-x", "upper": "drwxr-xr-x", "upper/etc": "drwxr-xr-x", "upper/etc/hostname": "-rw-r--r-- box",
		"upper/etc/ssh": "drwxr-xr-x", "upper/etc/motd": "-rw-r--r-- merged", "work": "drwxr-xr-x",
	}
	cut := errors.New("power cut")
	for k := 1; ; k++ {
		dir := filepath.Join(mnt, "@overlay", "b", fmt.Sprint("v", k))
		n := 0
		err := NewUpper{Dir: dir, From: old, Fill: fill, Step: func(string) error {
			if n++; n == k {
				return cut
			}
			return nil
		}}.Create()
		if err != nil && !errors.Is(err, cut) {
			t.Fatalf("step %d: %v", k, err)
		}
		if _, serr := os.Lstat(dir); os.IsNotExist(serr) {
			must(t, NewUpper{Dir: dir, From: old, Fill: fill}.Create())
		}
		if got := snapshot(t, dir); !reflect.DeepEqual(got, want) {
			t.Errorf("cut after step %d:\n got %v\nwant %v", k, got, want)
		}
		if ok, err := IsSubvolume(dir); !ok || err != nil {
			t.Errorf("the upper made from a snapshot is not a subvolume: %v, %v", ok, err)
		}
		if n, err := syscall.Getxattr(filepath.Join(dir, "upper"), "trusted.overlay.impure", make([]byte, 8)); err == nil {
			t.Errorf("cut after step %d: upper/ kept the old overlay's trusted.overlay.impure (%d bytes)", k, n)
		}
		if err == nil {
			break
		}
	}
	must(t, os.WriteFile(filepath.Join(mnt, "@overlay", "b", "v1", "upper", "etc", "hostname"), []byte("new"), 0o644))
	if got := snapshot(t, old); !reflect.DeepEqual(got, before) {
		t.Errorf("the old upper changed:\n got %v\nwant %v", got, before)
	}
	if ok, _ := IsSubvolume(filepath.Join(old, "upper")); ok {
		t.Error("a plain directory is taken for a subvolume")
	}
	if ok, _ := IsSubvolume(t.TempDir()); ok {
		t.Error("a directory off btrfs is taken for a subvolume")
	}
	// Pruning removes subvolume uppers like directories.
	if _, err := PruneUppers(mnt, map[string]string{"a": "v2", "b": "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(old); !os.IsNotExist(err) {
		t.Errorf("the pruned subvolume upper is still there: %v", err)
	}
}

// An old upper whose upper/ is a symlink gives a snapshot with a real,
// empty upper/: the merge's edits never follow it out of the new upper.
func TestNewUpperFromSymlinkedUpperRealBtrfs(t *testing.T) {
	mnt := loopMount(t, Btrfs)
	old := filepath.Join(mnt, "@overlay", "a", "v1")
	must(t, NewUpper{Dir: old}.Create())
	outside := filepath.Join(mnt, "outside")
	write(t, outside, map[string]string{"etc/keep": "x"})
	must(t, os.RemoveAll(filepath.Join(old, "upper")))
	must(t, os.Symlink(outside, filepath.Join(old, "upper")))
	dir := filepath.Join(mnt, "@overlay", "b", "v2")
	must(t, NewUpper{Dir: dir, From: old}.Create())
	want := map[string]string{".": "drwxr-xr-x", "upper": "drwxr-xr-x", "work": "drwxr-xr-x"}
	if got := snapshot(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("upper from a symlinked upper/:\n got %v\nwant %v", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "etc", "keep")); err != nil || string(b) != "x" {
		t.Errorf("the symlink's target changed: %q, %v", b, err)
	}
}

// TestNewUpperFromImmutable: the /etc merge's snapshot of an old upper
// holding an immutable file outside etc (chattr +i
// /root/.ssh/authorized_keys, copied up with its flag), over a leftover of
// an earlier attempt holding one too, is cut down to etc: the flags of the
// snapshot's own inodes are cleared, the old upper's stay. The EPERM used
// to fail the merge, and then the leftover's removal, at every boot.
func TestNewUpperFromImmutable(t *testing.T) {
	mnt := loopMount(t, Btrfs)
	old := filepath.Join(mnt, "@overlay", "a", "v1")
	must(t, NewUpper{Dir: old}.Create())
	write(t, old, map[string]string{"upper/etc/hostname": "box", "upper/root/.ssh/authorized_keys": "ssh-ed25519 AAA"})
	keys := filepath.Join(old, "upper/root/.ssh/authorized_keys")
	dir := filepath.Join(mnt, "@overlay", "b", "v2")
	tmp := TempUpperDir(dir)
	write(t, tmp, map[string]string{"upper/etc/leftover": "x"})
	for _, f := range []string{keys, filepath.Join(tmp, "upper/etc/leftover")} {
		if out, err := exec.Command("chattr", "+i", f).CombinedOutput(); err != nil {
			t.Skipf("chattr +i: %v: %s", err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-R", "-i", filepath.Join(mnt, "@overlay")).Run() })
	if err := (NewUpper{Dir: dir, From: old}).Create(); err != nil {
		t.Fatalf("new upper from an old one with an immutable file: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "upper/etc/hostname")); err != nil || string(b) != "box" {
		t.Errorf("new upper's etc/hostname: %q, %v: want the old upper's", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "upper/root")); !os.IsNotExist(err) {
		t.Errorf("new upper's root/: %v: want it cut away", err)
	}
	if out, err := exec.Command("lsattr", "-d", keys).CombinedOutput(); err != nil || !strings.Contains(strings.Fields(string(out))[0], "i") {
		t.Errorf("the old upper's authorized_keys: lsattr %q, %v: want it still immutable", out, err)
	}
}

// TestNewUpperCopyAfterInPlace: the /etc merge's retry by copying
// (init's inPlaceOrCopy) after an in-place merge that an immutable file in
// etc stopped: the snapshot left behind, holding that file with its flag,
// is removed, and the copying attempt makes the upper.
func TestNewUpperCopyAfterInPlace(t *testing.T) {
	mnt := loopMount(t, Btrfs)
	old := filepath.Join(mnt, "@overlay", "a", "v1")
	must(t, NewUpper{Dir: old}.Create())
	write(t, old, map[string]string{"upper/etc/resolv.conf": "nameserver 10.0.0.1\n"})
	if out, err := exec.Command("chattr", "+i", filepath.Join(old, "upper/etc/resolv.conf")).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-R", "-i", filepath.Join(mnt, "@overlay")).Run() })
	dir := filepath.Join(mnt, "@overlay", "b", "v2")
	dropResolv := func(tmp string) error { return os.Remove(filepath.Join(tmp, "upper/etc/resolv.conf")) }
	if err := (NewUpper{Dir: dir, From: old, Fill: dropResolv}).Create(); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("in place: %v, want the immutable file's EPERM (the case the copy retries)", err)
	}
	if err := (NewUpper{Dir: dir}).Create(); err != nil {
		t.Fatalf("by copying after the failed attempt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "upper")); err != nil {
		t.Errorf("new upper: %v", err)
	}
}
