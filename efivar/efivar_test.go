// SPDX-License-Identifier: Apache-2.0

package efivar

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/keel-boot/keel/devspec"
)

// encode is an efivarfs file as systemd-stub leaves it: attributes (boot
// and runtime access, volatile), then s in UTF-16LE.
func encode(s string) []byte {
	b := []byte{0x06, 0, 0, 0}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

func TestParseLoaderDevicePartUUID(t *testing.T) {
	const g = "8F3A1C2E-5B6D-4E7F-9A0B-1C2D3E4F5A6B"
	for _, tc := range []struct {
		name string
		in   []byte
		want string // "" when an error is expected
		err  string
	}{
		{"upper case, NUL-terminated (systemd-boot)", encode(g + "\x00"), strings.ToLower(g), ""},
		{"lower case, no NUL", encode(strings.ToLower(g)), strings.ToLower(g), ""},
		{"empty", nil, "", "of 0 bytes"},
		{"attributes only", []byte{6, 0, 0, 0}, "", "expected a GUID"},
		{"odd length", append(encode(g), 0), "", "even number of bytes"},
		{"not a GUID", encode("PARTUUID=" + g), "", "expected a GUID"},
		{"a GUID without dashes", encode(strings.ReplaceAll(g, "-", "") + "0000"), "", "expected a GUID"},
		{"non-hex", encode("8F3A1C2E-5B6D-4E7F-9A0B-1C2D3E4F5A6G"), "", "expected a GUID"},
		{"too large", encode(strings.Repeat(g, 8)), "", "more than 256 bytes"},
		{"kept across boots", append([]byte{0x07, 0, 0, 0}, encode(g)[4:]...), "", "kept in the firmware's flash across boots (attributes 0x7)"},
	} {
		got, err := ParseLoaderDevicePartUUID(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s: %q, %v: want %q", tc.name, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %q, %v: want an error saying %q", tc.name, got, err, tc.err)
		}
	}
}

func TestReadLoaderDevicePartUUID(t *testing.T) {
	dir := t.TempDir()
	if got, err := ReadLoaderDevicePartUUID(dir); got != "" || err != nil {
		t.Errorf("no variable: %q, %v: want none, no error", got, err)
	}
	p := filepath.Join(dir, LoaderDevicePartUUIDName)
	if err := os.WriteFile(p, encode("ABCDEF01-2345-6789-ABCD-EF0123456789\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadLoaderDevicePartUUID(dir); got != "abcdef01-2345-6789-abcd-ef0123456789" || err != nil {
		t.Errorf("%q, %v: want the GUID in lower case", got, err)
	}
	if err := os.WriteFile(p, encode("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLoaderDevicePartUUID(dir); err == nil || !strings.Contains(err.Error(), LoaderDevicePartUUIDName) {
		t.Errorf("a damaged variable: %v: want an error naming the file", err)
	}
}

// FuzzParseLoaderDevicePartUUID: any bytes give a lower-case GUID or an
// error, never a panic; a GUID given is one devspec.IsGUID accepts.
func FuzzParseLoaderDevicePartUUID(f *testing.F) {
	f.Add(encode("8F3A1C2E-5B6D-4E7F-9A0B-1C2D3E4F5A6B\x00"))
	f.Add([]byte{6, 0, 0, 0, 0xd8, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseLoaderDevicePartUUID(b)
		if err != nil {
			return
		}
		if !devspec.IsGUID(got) || got != strings.ToLower(got) {
			t.Fatalf("%q from %x: not a lower-case GUID", got, b)
		}
		if b[0]&NonVolatile != 0 {
			t.Fatalf("%q from %x: a variable kept across boots was followed", got, b)
		}
	})
}
