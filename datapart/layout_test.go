// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// fakeSys is the real filesystem with subvolume creation recorded and
// replaced by mkdir, so the btrfs path runs in a temp directory.
func fakeSys(subvols *[]string) Sys {
	return Sys{CreateSubvolume: func(parent, name string) error {
		*subvols = append(*subvols, name)
		return os.Mkdir(filepath.Join(parent, name), 0o755)
	}}
}

func TestEnsureLayout(t *testing.T) {
	for _, tc := range []struct {
		name, fstype string
		before       map[string]string
		link         string // a symlink made at root/link before
		created      []string
		subvols      []string
		err          string
	}{
		{name: "empty btrfs", fstype: Btrfs, created: []string{Var, Home, Overlay}, subvols: []string{Var, Home, Overlay}},
		{name: "empty ext4", fstype: Ext4, before: map[string]string{"lost+found/": ""}, created: []string{Var, Home, Overlay}},
		{name: "existing kept", fstype: Btrfs, before: map[string]string{"@var/lib/x": "keep", "@home/u/f": "keep"}, created: []string{Overlay}, subvols: []string{Overlay}},
		{name: "all there", fstype: Ext4, before: map[string]string{"@var/": "", "@home/": "", "@overlay/a/": ""}},
		{name: "file in the way", fstype: Btrfs, before: map[string]string{"@home": "not a dir"}, created: []string{Var}, subvols: []string{Var},
			err: "@home is a regular file, expected a directory or subvolume (left untouched)"},
		{name: "symlink in the way", fstype: Ext4, link: Var, err: "@var is a symlink"},
		{name: "xfs", fstype: "xfs", err: `filesystem "xfs", expected btrfs or ext4`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, tc.before)
			if tc.link != "" {
				must(t, os.Symlink(t.TempDir(), filepath.Join(root, tc.link)))
			}
			before := snapshot(t, root)
			var subvols []string
			created, err := EnsureLayout(root, tc.fstype, fakeSys(&subvols))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			var rel []string
			for _, c := range created {
				rel = append(rel, strings.TrimPrefix(c, root+"/"))
			}
			if !reflect.DeepEqual(rel, tc.created) || !reflect.DeepEqual(subvols, tc.subvols) {
				t.Errorf("created %v with subvolumes %v, want %v and %v", rel, subvols, tc.created, tc.subvols)
			}
			after := snapshot(t, root)
			for p, d := range before {
				if p == Overlay && after[p] == "drwx------" {
					continue // an @overlay left open is closed (TestEnsureLayoutClosesOverlay)
				}
				if after[p] != d {
					t.Errorf("%s changed: %q → %q", p, d, after[p])
				}
			}
			for _, c := range created {
				fi, err := os.Stat(c)
				must(t, err)
				want := os.FileMode(0o755)
				if filepath.Base(c) == Overlay {
					want = 0o700
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s mode %v, want %v", c, fi.Mode().Perm(), want)
				}
			}
		})
	}
}

// TestEnsureLayoutClosesOverlay: an @overlay left 0755 (a power cut
// between the subvolume's creation and its chmod) is made private again;
// @var and @home keep the modes they have.
func TestEnsureLayoutClosesOverlay(t *testing.T) {
	root := t.TempDir()
	for name, mode := range map[string]os.FileMode{Overlay: 0o755, Var: 0o750, Home: 0o751} {
		must(t, os.Mkdir(filepath.Join(root, name), mode))
		must(t, os.Chmod(filepath.Join(root, name), mode))
	}
	var subvols []string
	if _, err := EnsureLayout(root, Btrfs, fakeSys(&subvols)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{Overlay: 0o700, Var: 0o750, Home: 0o751} {
		fi, err := os.Stat(filepath.Join(root, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, want)
		}
	}
}

func TestEnsureLayoutMissingRoot(t *testing.T) {
	_, err := EnsureLayout(filepath.Join(t.TempDir(), "nope"), Btrfs, Sys{})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("err = %v, want not found", err)
	}
}

func TestSubvolCreateIoctlNumber(t *testing.T) {
	// BTRFS_IOC_SUBVOL_CREATE from linux/btrfs.h on x86-64, as strace shows it.
	if ioctlSubvolCreate != 0x5000940e {
		t.Errorf("ioctl number %#x, want 0x5000940e", ioctlSubvolCreate)
	}
	if s := unsafe.Sizeof(btrfsVolArgs{}); s != 4096 {
		t.Errorf("struct btrfs_ioctl_vol_args is %d bytes, want 4096", s)
	}
}

func TestCreateSubvolumeErrors(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"", ".", "..", "a/b"} {
		if err := CreateSubvolume(dir, name); err == nil || !strings.Contains(err.Error(), "expected one path component") {
			t.Errorf("%q: err = %v", name, err)
		}
	}
	// t.TempDir is on the host's root filesystem, which is ext4 here;
	// on a btrfs host this creates a real subvolume, which is fine too.
	err := CreateSubvolume(dir, "sub")
	if err != nil && !strings.Contains(err.Error(), "is not on btrfs") {
		t.Errorf("err = %v, want 'is not on btrfs'", err)
	}
}
