// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestColdplugWritesAdd(t *testing.T) {
	sys := t.TempDir()
	names := []string{"vda", "vda1", "loop0"}
	for _, n := range names {
		d := filepath.Join(sys, "class", "block", n)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "uevent"), []byte("MAJOR=254\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Not a block device's uevent: must be left alone.
	other := filepath.Join(sys, "class", "net", "eth0")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "uevent"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Coldplug(sys); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(sys, "class", "block", n, "uevent"))
		if err != nil || string(b) != "add" {
			t.Errorf("%s/uevent = %q, %v; want \"add\"", n, b, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(other, "uevent")); string(b) != "x" {
		t.Errorf("net/eth0/uevent was written: %q", b)
	}
}

func TestColdplugReportsFailures(t *testing.T) {
	sys := t.TempDir()
	// A directory where the uevent file should be: the write fails, and
	// the error must name it while the other device is still announced.
	if err := os.MkdirAll(filepath.Join(sys, "class", "block", "vda", "uevent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sys, "class", "block", "vdb"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "class", "block", "vdb", "uevent"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Coldplug(sys)
	if err == nil || !strings.Contains(err.Error(), filepath.Join("vda", "uevent")) {
		t.Errorf("err = %v, want it to name vda/uevent", err)
	}
	if b, _ := os.ReadFile(filepath.Join(sys, "class", "block", "vdb", "uevent")); string(b) != "add" {
		t.Errorf("vdb/uevent = %q, want \"add\" despite vda failing", b)
	}
	if err := Coldplug(t.TempDir()); err != nil {
		t.Errorf("Coldplug of a sysfs without block devices: %v", err)
	}
}
