// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The merge starts from a snapshot only when the old upper's upper/ and
// upper/etc are directories or absent: a symlink would not be in the
// snapshot as the merge reads it.
func TestPlainDirs(t *testing.T) {
	dir := t.TempDir()
	if !plainDirs(dir, "upper", "upper/etc") {
		t.Error("absent: want plain")
	}
	if err := os.MkdirAll(filepath.Join(dir, "upper", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !plainDirs(dir, "upper", "upper/etc") {
		t.Error("directories: want plain")
	}
	if err := os.Remove(filepath.Join(dir, "upper", "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(dir, "upper", "etc")); err != nil {
		t.Fatal(err)
	}
	if plainDirs(dir, "upper", "upper/etc") {
		t.Error("upper/etc a symlink: want not plain")
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if plainDirs(dir, "file") {
		t.Error("a file: want not plain")
	}
}
