// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readAt reads n bytes at off of the file name.
func readAt(t *testing.T, name string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(io.NewSectionReader(f, off, int64(n)), b); err != nil {
		t.Fatalf("read %s at %d: %v", name, off, err)
	}
	return b
}

func TestRootTree(t *testing.T) {
	payload := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(payload, []byte("#!ELF"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := RootTree(t, payload)
	st, err := os.Stat(filepath.Join(dir, "sbin/init"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("sbin/init: %v, %v: want mode 0755", st, err)
	}
	for _, d := range rootDirs {
		if st, err := os.Stat(filepath.Join(dir, d)); err != nil || !st.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/keel-test-marker")); err != nil || string(b) != MarkerContent {
		t.Errorf("marker %q, %v", b, err)
	}
}

func TestMkSquashfs(t *testing.T) {
	dir := t.TempDir()
	WriteFile(t, dir, "etc/x", "x")
	img := MkSquashfs(t, dir)
	sb := readAt(t, img, 0, 96)
	// Superblock: magic "hsqs", compression id at 20 (5 = lz4).
	if string(sb[:4]) != "hsqs" || binary.LittleEndian.Uint16(sb[20:]) != 5 {
		t.Errorf("squashfs superblock %x: want magic hsqs and lz4", sb[:24])
	}
}

func TestMkExt4(t *testing.T) {
	dir := t.TempDir()
	WriteFile(t, dir, "var/lib/hello", "hello\n")
	img := MkExt4(t, dir, 8, "keel-data")
	sb := readAt(t, img, 1024, 256)
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 || strings.TrimRight(string(sb[0x78:0x88]), "\x00") != "keel-data" {
		t.Errorf("ext4 superblock: magic %#x, label %q", binary.LittleEndian.Uint16(sb[0x38:]), sb[0x78:0x88])
	}
	if st, err := os.Stat(img); err != nil || st.Size() != 8<<20 {
		t.Errorf("image size: %v, %v", st, err)
	}
	out := run(t, "", "debugfs", "-R", "cat /var/lib/hello", img)
	if string(out) != "hello\n" {
		t.Errorf("debugfs cat /var/lib/hello = %q", out)
	}
}

func TestMkCpio(t *testing.T) {
	dir := t.TempDir()
	WriteFile(t, dir, "init", "#!/bin/sh\n")
	WriteFile(t, dir, "etc/conf", "c")
	img := MkCpio(t, dir)
	if got := string(readAt(t, img, 0, 6)); got != "070701" {
		t.Errorf("cpio magic %q, want newc 070701", got)
	}
	list := string(run(t, "", "sh", "-c", `cpio -it --quiet <"$1"`, "sh", img))
	if want := []string{"etc", "etc/conf", "init"}; !slices.Equal(strings.Fields(list), want) {
		t.Errorf("cpio entries %q, want %q", list, want)
	}
}

func TestCopyTree(t *testing.T) {
	src := t.TempDir()
	WriteFile(t, src, "a/b", "b")
	if err := os.Symlink("a/b", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	dst := CopyTree(t, src)
	if target, err := os.Readlink(filepath.Join(dst, "link")); err != nil || target != "a/b" {
		t.Errorf("symlink copied as %q, %v", target, err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "a/b")); err != nil || string(b) != "b" {
		t.Errorf("a/b copied as %q, %v", b, err)
	}
}
