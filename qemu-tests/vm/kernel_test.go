// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64", true},
		{"vmlinuz-6.10.0", "vmlinuz-6.9.0", false},
		{"vmlinuz-6.1.0", "vmlinuz-6.1.0-1", true},
		{"vmlinuz-6.1.0", "vmlinuz-6.1.0", false},
		{"vmlinuz-6.1.0-rc1", "vmlinuz-6.1.0-rc2", true},
	}
	for _, tt := range tests {
		if got := versionLess(tt.a, tt.b); got != tt.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestFindKernel(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"vmlinuz-6.9.0-1-amd64", "vmlinuz-6.10.0-1-amd64", "config-7.0"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := findKernel("", dir); err != nil || filepath.Base(got) != "vmlinuz-6.10.0-1-amd64" {
		t.Errorf("findKernel = %q, %v; want the newest", got, err)
	}
	override := filepath.Join(dir, "config-7.0")
	if got, err := findKernel(override, dir); err != nil || got != override {
		t.Errorf("findKernel(override) = %q, %v", got, err)
	}
	if _, err := findKernel(filepath.Join(dir, "missing"), dir); err == nil {
		t.Error("a missing KEEL_KERNEL was accepted")
	}
	if _, err := findKernel("", t.TempDir()); err == nil {
		t.Error("an empty /boot was accepted")
	}
}

// bzImage builds the start of a bzImage whose header points at version.
func bzImage(version string) []byte {
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x20e:], 0x300-0x200)
	copy(b[0x300:], version+"\x00trailing")
	return b
}

func TestBzImageVersion(t *testing.T) {
	got, err := BzImageVersion(bzImage("6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1 SMP"))
	if err != nil || got != "6.1.0-56-amd64" {
		t.Errorf("BzImageVersion = %q, %v", got, err)
	}
	bad := [][]byte{nil, make([]byte, 0x400), bzImage(""), bzImage("   ")}
	noPtr := bzImage("6.1")
	binary.LittleEndian.PutUint16(noPtr[0x20e:], 0)
	beyond := bzImage("6.1")
	binary.LittleEndian.PutUint16(beyond[0x20e:], 0xfff0)
	for _, b := range append(bad, noPtr, beyond) {
		if v, err := BzImageVersion(b); err == nil {
			t.Errorf("BzImageVersion(%d bytes) = %q, want an error", len(b), v)
		}
	}
}

func TestKVerOfTheTestKernel(t *testing.T) {
	k := Kernel(t)
	v := KVer(t)
	if _, err := os.Stat(filepath.Join("/lib/modules", v)); err != nil && strings.HasPrefix(k, "/boot/") {
		t.Errorf("KVer = %q of %s: no /lib/modules/%s: %v", v, k, v, err)
	}
	if base := filepath.Base(k); strings.HasPrefix(base, "vmlinuz-") && base != "vmlinuz-"+v {
		t.Errorf("KVer = %q, but the kernel is %s", v, base)
	}
}

func FuzzBzImageVersion(f *testing.F) {
	f.Add(bzImage("6.1.0-56-amd64 #1"))
	f.Add([]byte("HdrS"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := BzImageVersion(b)
		if err == nil && (v == "" || strings.ContainsAny(v, " \t\n\x00")) {
			t.Errorf("BzImageVersion = %q: want one non-empty word", v)
		}
	})
}
