// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// DebianRoot builds (or takes from the cache) the minimal Debian bookworm
// root of scripts/debian-root.sh once per test binary and returns it
// unpacked. The tree is shared: copy it with CopyTree before changing it.
// It skips t when mmdebstrap is missing or the test does not run as root
// (unpacking device nodes and ownership needs root).
func DebianRoot(t testing.TB) string {
	t.Helper()
	shared.debianOnce.Do(func() {
		start := time.Now()
		shared.debian, shared.debianSkip, shared.debianErr = debianRoot()
		if shared.debianErr == nil && shared.debianSkip == "" {
			t.Logf("Debian root ready in %v", time.Since(start).Round(time.Second))
		}
	})
	switch {
	case shared.debianSkip != "":
		t.Skip(shared.debianSkip)
	case shared.debianErr != nil:
		t.Fatal(shared.debianErr)
	}
	return shared.debian
}

// debianRoot runs the script and unpacks its tarball; a non-empty skip says
// why it cannot run here.
func debianRoot() (dir, skip string, err error) {
	if _, err := lookPath("mmdebstrap"); err != nil {
		return "", "mmdebstrap not found (Debian package mmdebstrap): " + err.Error(), nil
	}
	if os.Geteuid() != 0 {
		return "", "the Debian root needs root to build and unpack", nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", "", err
	}
	cache, err := CacheDir()
	if err != nil {
		return "", "", err
	}
	scratch, err := shared.scratchDir()
	if err != nil {
		return "", "", err
	}
	out := filepath.Join(scratch, "debian")
	script := filepath.Join(root, "scripts", "debian-root.sh")
	if _, err := runErr(root, []string{"KEEL_CACHE_DIR=" + cache}, "bash", script, out); err != nil {
		return "", "", fmt.Errorf("build the Debian root: %w", err)
	}
	tree := filepath.Join(scratch, "debian-root")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return "", "", fmt.Errorf("debian root: %w", err)
	}
	tarball := filepath.Join(out, "debian-root.tar")
	if _, err := runErr("", nil, "tar", "-C", tree, "--numeric-owner", "-xpf", tarball); err != nil {
		return "", "", fmt.Errorf("unpack the Debian root: %w", err)
	}
	return tree, "", os.Remove(tarball)
}
