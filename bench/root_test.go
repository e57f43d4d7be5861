// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteRootTree(t *testing.T) {
	dir := t.TempDir()
	bb := filepath.Join(t.TempDir(), "busybox")
	if err := os.WriteFile(bb, []byte("\x7fELF stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteRootTree(dir, bb); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"dev", "proc", "sys", "run"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("/%s: %v, want a directory", d, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "sbin/init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("/sbin/init: %v, want mode 0755", err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("/bin/sh -> %q, %v; want busybox", target, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/os-release")); !strings.Contains(string(b), "ID=") {
		t.Errorf("/etc/os-release %q: want an ID= line", b)
	}
	if err := WriteRootTree(t.TempDir(), filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "busybox-static") {
		t.Errorf("missing busybox: %v, want an error naming busybox-static", err)
	}
}

// TestRootInitScriptSyntax checks the script with the shell that runs it.
func TestRootInitScriptSyntax(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("busybox not installed (Debian package busybox-static)")
	}
	out, err := exec.Command("busybox", "sh", "-n", "-c", RootInitScript).CombinedOutput()
	if err != nil {
		t.Fatalf("busybox sh -n: %v\n%s", err, out)
	}
	if !strings.Contains(RootInitScript, `"<2>`+MarkerLine+`" >/dev/kmsg`) {
		t.Error("the marker must go to /dev/kmsg at level 2 to carry a kernel timestamp")
	}
}
