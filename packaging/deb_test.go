// SPDX-License-Identifier: Apache-2.0

// Package packaging holds no Go code: its test builds keel's Debian package
// with `make deb` and checks it with dpkg-deb and lintian (docs/integration.md).
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// buildDeb runs `make deb` into a temporary OUT and returns the package.
func buildDeb(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"dpkg-deb", "make", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "-C", "..", "deb", "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "keel_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %q, want one keel_VERSION_amd64.deb", debs)
	}
	return debs[0]
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	b, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %q: %v", name, args, err)
	}
	return string(b)
}

// TestDebPackage builds the package once and checks its control fields,
// files and conffiles, then runs lintian on it.
func TestDebPackage(t *testing.T) {
	deb := buildDeb(t)
	t.Run("contents", func(t *testing.T) { checkContents(t, deb) })
	t.Run("lintian", func(t *testing.T) { checkLintian(t, deb) })
}

func checkContents(t *testing.T, deb string) {
	fields := map[string]string{
		"Package": "keel", "Architecture": "amd64", "Section": "admin", "Priority": "optional",
		"Provides": "linux-initramfs-tool", "Conflicts": "linux-initramfs-tool",
	}
	for f, want := range fields {
		if got := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, f)); got != want {
			t.Errorf("control %s: %q, want %q", f, got, want)
		}
	}
	version := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, "Version"))
	if !strings.HasSuffix(filepath.Base(deb), "_"+version+"_amd64.deb") || !strings.HasSuffix(version, "-1") {
		t.Errorf("version %q (file %s): want UPSTREAM-1 in the file name", version, filepath.Base(deb))
	}
	if dep := strings.TrimSpace(output(t, "dpkg-deb", "-f", deb, "Depends")); dep != "" {
		t.Errorf("Depends: %q, want none (static binaries)", dep)
	}
	files := map[string]string{} // path → mode string
	for _, line := range strings.Split(output(t, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 {
			files[strings.TrimPrefix(f[5], ".")] = f[0]
		}
	}
	for path, mode := range map[string]string{
		"/usr/bin/mkinitrd": "-rwxr-xr-x", "/usr/bin/slotctl": "-rwxr-xr-x", "/usr/lib/keel/init": "-rwxr-xr-x",
		"/etc/kernel/postinst.d/keel": "-rwxr-xr-x", "/etc/kernel/postrm.d/keel": "-rwxr-xr-x",
		"/usr/lib/kernel/install.d/50-keel.install": "-rwxr-xr-x", "/etc/keel/mkinitrd.conf": "-rw-r--r--",
		"/usr/lib/systemd/system/keel-mark-good.service": "-rw-r--r--",
		"/usr/share/doc/keel/copyright":                  "-rw-r--r--", "/usr/share/doc/keel/changelog.Debian.gz": "-rw-r--r--",
		"/usr/share/lintian/overrides/keel": "-rw-r--r--",
	} {
		if files[path] != mode {
			t.Errorf("%s: mode %q, want %q", path, files[path], mode)
		}
	}
	if files["/usr/share/doc/keel/integration.md.gz"] == "" && files["/usr/share/doc/keel/integration.md"] == "" {
		t.Error("docs/integration.md is not in /usr/share/doc/keel")
	}
	ctrl := t.TempDir()
	output(t, "dpkg-deb", "-e", deb, ctrl)
	conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(conffiles))
	want := []string{"/etc/keel/mkinitrd.conf", "/etc/kernel/postinst.d/keel", "/etc/kernel/postrm.d/keel"}
	if !slices.Equal(got, want) {
		t.Errorf("conffiles %q, want %q", got, want)
	}
}

// checkLintian: lintian finds nothing in the package beyond the overrides
// it ships (/usr/share/lintian/overrides/keel, each with its reason).
func checkLintian(t *testing.T, deb string) {
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Skipf("lintian not found (Debian package lintian): %v", err)
	}
	cmd := exec.Command("lintian", "--fail-on", "error,warning,info", "--info", "--pedantic", deb)
	b, err := cmd.CombinedOutput()
	var tags []string
	for _, line := range strings.Split(string(b), "\n") {
		if len(line) > 2 && strings.Contains("EWIPX", line[:1]) && line[1] == ':' {
			tags = append(tags, line)
		}
	}
	if err != nil || len(tags) > 0 {
		t.Fatalf("lintian: %v\n%s", err, strings.Join(tags, "\n"))
	}
}
