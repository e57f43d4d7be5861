// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"strings"
	"testing"
)

func TestEncodeImageID(t *testing.T) {
	for _, tc := range []struct{ id, want, err string }{
		{id: "debian-12.5_2026-01-01", want: "debian-12.5_2026-01-01"},
		{id: "os/v1", want: "os%2Fv1"},
		{id: "100%", want: "100%25"},
		{id: ".", want: "%2E"},
		{id: "..", want: "%2E."},
		{id: ".hidden", want: "%2Ehidden"},
		{id: "a,b:c\\d", want: "a%2Cb%3Ac%5Cd"},
		{id: "x+y=z@w~", want: "x+y=z@w~"},
		{id: strings.Repeat("/", 64), want: strings.Repeat("%2F", 64)},
		{id: "", err: "expected 1-64 bytes"},
		{id: strings.Repeat("a", 65), err: "expected 1-64 bytes"},
		{id: "a b", err: "byte 1 is 0x20"},
		{id: "é", err: "expected printable ASCII"},
	} {
		got, err := EncodeImageID(tc.id)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.id, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.id, got, err, tc.want)
			continue
		}
		if back, err := DecodeImageID(got); err != nil || back != tc.id {
			t.Errorf("%q: decoded back to %q, %v", tc.id, back, err)
		}
	}
}

func TestDecodeImageIDRejectsForeignNames(t *testing.T) {
	for _, name := range []string{
		"", ".tmp", "..", "%2f", "%41", "a%2", "a%zz", "a b", "a/b", "%2E%2E%2F" + strings.Repeat("a", 62),
	} {
		if id, err := DecodeImageID(name); err == nil {
			t.Errorf("%q decoded to %q, want an error", name, id)
		}
	}
}

func TestUpperDir(t *testing.T) {
	got, err := UpperDir("/run/keel/data", "a", "os/2026.1")
	if want := "/run/keel/data/@overlay/a/os%2F2026.1"; err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	for _, slot := range []string{"", "A", "../x", "a/b", ".", strings.Repeat("a", 33)} {
		if _, err := UpperDir("/d", slot, "id"); err == nil || !strings.Contains(err.Error(), "overlay slot name") {
			t.Errorf("slot %q: err = %v, want a slot name error", slot, err)
		}
	}
	if _, err := UpperDir("/d", "a", ""); err == nil {
		t.Error("empty image id accepted")
	}
}

func FuzzEncodeImageID(f *testing.F) {
	for _, s := range []string{"debian", "a/b", "..", "%", "x,y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		name, err := EncodeImageID(id)
		if err != nil {
			return
		}
		if name == "." || name == ".." || strings.ContainsAny(name, "/\x00,:\\") || len(name) > 3*MaxImageID || name[0] == '.' {
			t.Fatalf("%q encoded as unsafe name %q", id, name)
		}
		if back, err := DecodeImageID(name); err != nil || back != id {
			t.Fatalf("%q → %q → %q, %v", id, name, back, err)
		}
	})
}

func FuzzDecodeImageID(f *testing.F) {
	for _, s := range []string{"debian", "a%2Fb", "%2E.", "%", "%zz", "%2f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		id, err := DecodeImageID(name)
		if err != nil {
			return
		}
		if enc, err := EncodeImageID(id); err != nil || enc != name {
			t.Fatalf("%q decoded to %q which encodes to %q, %v", name, id, enc, err)
		}
	})
}
