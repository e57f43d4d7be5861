// SPDX-License-Identifier: Apache-2.0

package mounts

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOverlayRenameCopiesUp mounts a real overlay (root only) with keel's
// options and renames a directory of the lower layer: the kernel refuses
// (EXDEV, so that mv copies the directory up whole) rather than record a
// redirect in the upper, which the /etc merge could not carry into the next
// image's upper. The same mount with redirect_dir=on shows the kernel
// would otherwise record one.
func TestOverlayRenameCopiesUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting an overlay needs root")
	}
	for _, c := range []struct {
		extra string // appended to keel's options
		want  error  // from the rename
	}{
		{"", unix.EXDEV},
		{",redirect_dir=on", nil},
	} {
		dir := t.TempDir()
		lower, upper, work, merged := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
		for _, d := range []string{filepath.Join(lower, "etc/foo.d"), upper, work, merged} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(lower, "etc/foo.d/a.conf"), []byte("a\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := unix.Mount("overlay", merged, "overlay", 0, OverlayData(lower, upper, work)+c.extra)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EPERM) {
			t.Skipf("no overlay here: %v", err)
		}
		if err != nil {
			t.Fatalf("mount with %q: %v", OverlayData(lower, upper, work)+c.extra, err)
		}
		err = os.Rename(filepath.Join(merged, "etc/foo.d"), filepath.Join(merged, "etc/bar.d"))
		if uerr := unix.Unmount(merged, 0); uerr != nil {
			t.Fatal(uerr)
		}
		if !errors.Is(err, c.want) && (c.want != nil || err != nil) {
			t.Errorf("options %q: renaming a lower directory: %v, want %v", c.extra, err, c.want)
		}
		_, xerr := unix.Lgetxattr(filepath.Join(upper, "etc/bar.d"), "trusted.overlay.redirect", nil)
		if redirect := xerr == nil; redirect != (c.want == nil) {
			t.Errorf("options %q: a redirect in the upper: %v (%v)", c.extra, redirect, xerr)
		}
	}
}
