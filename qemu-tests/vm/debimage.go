// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// DebImage is a Debian root built with keel's package by
// scripts/deb-image.sh: the tree, the kernel package apt installed in it,
// and what mmdebstrap printed while it did (the package scripts' output).
type DebImage struct {
	Root      string
	Kver      string // the one kernel in Root/lib/modules
	KernelDeb string
	Log       string
}

// BuildDebImage builds keel's .deb (make deb into a temporary OUT), then the
// root of scripts/deb-image.sh from it (cached in CacheDir unless $CI), and
// unpacks it. It skips t when mmdebstrap or dpkg-deb is missing or the test
// does not run as root.
func BuildDebImage(t testing.TB) DebImage {
	t.Helper()
	needTool(t, "mmdebstrap", "mmdebstrap")
	needTool(t, "dpkg-deb", "dpkg")
	if os.Geteuid() != 0 {
		t.Skip("the Debian image needs root to build and unpack")
	}
	src, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	run(t, src, "make", "--no-print-directory", "deb", "OUT="+out)
	debs, _ := filepath.Glob(filepath.Join(out, "keel_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb OUT=%s made %q, want one keel_VERSION_amd64.deb", out, debs)
	}
	built := filepath.Join(out, "image")
	if out, err := runErr(src, []string{"KEEL_CACHE_DIR=" + cache}, "bash", filepath.Join(src, "scripts", "deb-image.sh"), debs[0], built); err != nil {
		t.Fatalf("build the Debian image: %v\nlast lines of its output:\n%s", err, tail(string(out), 30))
	}
	img := DebImage{Root: filepath.Join(out, "root"), KernelDeb: filepath.Join(built, "linux-image.deb")}
	if err := os.Mkdir(img.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", "tar", "-C", img.Root, "--numeric-owner", "-xpf", filepath.Join(built, "deb-root.tar"))
	log, err := os.ReadFile(filepath.Join(built, "deb-image.log"))
	if err != nil {
		t.Fatal(err)
	}
	img.Log = string(log)
	kvers, err := os.ReadDir(filepath.Join(img.Root, "usr", "lib", "modules"))
	if err != nil || len(kvers) != 1 {
		t.Fatalf("kernels in the image: %v, %v; want one", kvers, err)
	}
	img.Kver = kvers[0].Name()
	return img
}

// Chroot runs a shell command in the image's root, with /proc mounted in a
// private mount namespace (so nothing stays mounted) and a noninteractive
// debconf, and returns what it printed (stdout and stderr).
func (d DebImage) Chroot(t testing.TB, command string) string {
	t.Helper()
	script := `mount -t proc proc "$1/proc" && DEBIAN_FRONTEND=noninteractive chroot "$1" /bin/sh -c "$2" 2>&1`
	out, err := runErr("", nil, "unshare", "--mount", "--propagation", "private", "--fork",
		"sh", "-c", script, "chroot", d.Root, command)
	if err != nil {
		t.Fatalf("in the image: %s: %v\n%s", command, err, out)
	}
	return strings.TrimSpace(string(out))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
