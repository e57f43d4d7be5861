// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// MarkerContent is what RootTree writes to /etc/keel-test-marker; tests that
// tell two roots apart (slot a and b) overwrite it.
const MarkerContent = "keel-test-root\n"

// MkSquashfs packs dir into a SquashFS image in a temporary directory. LZ4
// is the cheapest to decompress under TCG and the Debian kernel has it
// (CONFIG_SQUASHFS_LZ4=y); ownership is kept as it is in dir.
func MkSquashfs(t testing.TB, dir string) string {
	t.Helper()
	needTool(t, "mksquashfs", "squashfs-tools")
	out := filepath.Join(t.TempDir(), "root.squashfs")
	run(t, "", "mksquashfs", dir, out, "-noappend", "-comp", "lz4", "-quiet", "-no-progress")
	return out
}

// MkExt4 makes an ext4 image of sizeMiB holding dir's files (mkfs.ext4 -d,
// no root needed), labelled label when not empty.
func MkExt4(t testing.TB, dir string, sizeMiB int, label string) string {
	t.Helper()
	needTool(t, "mkfs.ext4", "e2fsprogs")
	out := filepath.Join(t.TempDir(), "fs.ext4")
	if err := createSparse(out, int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	args := []string{"-q", "-F", "-d", dir}
	if label != "" {
		args = append(args, "-L", label)
	}
	run(t, "", "mkfs.ext4", append(args, out, strconv.Itoa(sizeMiB)+"M")...)
	return out
}

// MkCpio packs dir into an uncompressed newc initramfs, every file owned by
// root. An uncompressed archive is the fastest for the kernel to unpack.
func MkCpio(t testing.TB, dir string) string {
	t.Helper()
	needTool(t, "cpio", "cpio")
	out := filepath.Join(t.TempDir(), "initrd.cpio")
	// Sorted names make the archive independent of directory order.
	script := `find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 >"$1"`
	run(t, dir, "sh", "-c", script, "sh", out)
	return out
}

// rootDirs are the directories of a test root: keel mounts or binds onto
// them (/var, /home from the data partition; /proc, /sys, /dev, /run moved
// from the initramfs).
var rootDirs = []string{"sbin", "etc", "var", "home", "run", "proc", "sys", "dev", "tmp"}

// RootTree makes a test root file system tree: the payload as /sbin/init,
// the directories keel expects, and /etc/keel-test-marker (MarkerContent).
func RootTree(t testing.TB, payload string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range rootDirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatalf("root tree: %v", err)
		}
	}
	Install(t, payload, dir, "sbin/init")
	WriteFile(t, dir, "etc/keel-test-marker", MarkerContent)
	return dir
}

// WriteFile writes content to dir/rel, creating parent directories.
func WriteFile(t testing.TB, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
}

// CopyTree copies src (ownership, modes, links, device nodes) into a new
// temporary directory that the test may change, such as a copy of DebianRoot.
func CopyTree(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	run(t, "", "cp", "-a", src+"/.", dst)
	return dst
}

// Install copies the executable src to dir/rel (mode 0755), creating parents:
// the payload as an initramfs's /init or a root's /sbin/init.
func Install(t testing.TB, src, dir, rel string) {
	t.Helper()
	if err := installFile(src, filepath.Join(dir, rel)); err != nil {
		t.Fatal(err)
	}
}

func installFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install %s: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("install %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		return fmt.Errorf("install %s as %s: %w", src, dst, err)
	}
	return os.Chmod(dst, 0o755) // WriteFile's mode is masked by the umask
}
