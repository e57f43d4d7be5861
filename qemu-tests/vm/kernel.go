// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Kernel returns the test kernel: $KEEL_KERNEL, else the newest
// /boot/vmlinuz-*. It skips t when there is none or it cannot be read
// (Debian's kernels are readable by root only).
func Kernel(t testing.TB) string {
	t.Helper()
	k, err := findKernel(os.Getenv("KEEL_KERNEL"), "/boot")
	if err != nil {
		t.Skipf("no test kernel: %v (set KEEL_KERNEL or apt-get install linux-image-amd64)", err)
	}
	f, err := os.Open(k)
	if err != nil {
		t.Skipf("test kernel unreadable: %v", err)
	}
	f.Close()
	return k
}

// KVer returns the release of the test kernel (`uname -r` in the guest), the
// name of its /lib/modules directory: read from the bzImage header, else
// taken from a vmlinuz-RELEASE file name.
func KVer(t testing.TB) string {
	t.Helper()
	k := Kernel(t)
	if b, err := os.ReadFile(k); err == nil {
		if v, err := BzImageVersion(b); err == nil {
			return v
		}
	}
	v, ok := strings.CutPrefix(filepath.Base(k), "vmlinuz-")
	if !ok || v == "" {
		t.Fatalf("kernel %s: no version in its bzImage header nor in its name (want vmlinuz-RELEASE)", k)
	}
	return v
}

// findKernel returns override when set, else the newest vmlinuz-* in dir.
func findKernel(override, dir string) (string, error) {
	if override != "" {
		if _, err := os.Stat(override); err != nil {
			return "", fmt.Errorf("KEEL_KERNEL: %w", err)
		}
		return override, nil
	}
	matches, err := filepath.Glob(filepath.Join(dir, "vmlinuz-*"))
	if err != nil || len(matches) == 0 {
		return "", fmt.Errorf("no %s/vmlinuz-*", dir)
	}
	newest := matches[0]
	for _, m := range matches[1:] {
		if versionLess(newest, m) {
			newest = m
		}
	}
	return newest, nil
}

// versionLess compares two strings as versions: runs of digits by value,
// everything else byte by byte, so 6.10.0 sorts after 6.9.0.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		ca, ra := versionChunk(a)
		cb, rb := versionChunk(b)
		if ca != cb {
			na, ea := strconv.ParseUint(ca, 10, 64)
			nb, eb := strconv.ParseUint(cb, 10, 64)
			if ea == nil && eb == nil && na != nb {
				return na < nb
			}
			return ca < cb
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

// versionChunk splits off a leading run of digits, or a single other byte.
func versionChunk(s string) (chunk, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		i = 1
	}
	return s[:i], s[i:]
}

// BzImageVersion reads the kernel release from an x86 bzImage's setup
// header: "HdrS" at 0x202, and at 0x20e the offset (less 0x200) of a
// NUL-terminated version string whose first word is the release.
// See Documentation/arch/x86/boot.rst.
func BzImageVersion(image []byte) (string, error) {
	const magicOff, verPtrOff = 0x202, 0x20e
	if len(image) < verPtrOff+2 || string(image[magicOff:magicOff+4]) != "HdrS" {
		return "", errors.New("bzImage: no HdrS setup header at 0x202")
	}
	ptr := int(binary.LittleEndian.Uint16(image[verPtrOff:]))
	if ptr == 0 {
		return "", errors.New("bzImage: no version string (kernel_version is 0)")
	}
	off := ptr + 0x200
	if off >= len(image) {
		return "", fmt.Errorf("bzImage: version string offset %#x beyond the image (%d bytes)", off, len(image))
	}
	s := image[off:]
	if end := bytes.IndexByte(s, 0); end >= 0 {
		s = s[:end]
	}
	fields := strings.Fields(string(s))
	if len(fields) == 0 || !strings.ContainsAny(fields[0], "0123456789") {
		return "", fmt.Errorf("bzImage: version string at %#x has no release: %.40q", off, s)
	}
	return fields[0], nil
}
