package kargs

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDevSpec(t *testing.T) {
	tests := []struct {
		in   string
		want DevSpec
	}{
		{"/dev/vda2", DevSpec{KindPath, "/dev/vda2"}},
		{"/dev/disk/by-partlabel/root-a", DevSpec{KindPath, "/dev/disk/by-partlabel/root-a"}},
		{"/dev/mapper/data", DevSpec{KindPath, "/dev/mapper/data"}},
		{"UUID=0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", DevSpec{KindUUID, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}},
		{"UUID=ABCD-1234", DevSpec{KindUUID, "abcd-1234"}},
		{"PARTUUID=A1B2C3D4-01", DevSpec{KindPartUUID, "a1b2c3d4-01"}},
		{"LABEL=My Data", DevSpec{KindLabel, "My Data"}},
		{"LABEL=a=b", DevSpec{KindLabel, "a=b"}},
		{"PARTLABEL=root-a", DevSpec{KindPartLabel, "root-a"}},
		{"PARTLABEL=données", DevSpec{KindPartLabel, "données"}},
	}
	for _, tt := range tests {
		got, err := ParseDevSpec(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDevSpec(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); !strings.EqualFold(s, tt.in) {
			t.Errorf("ParseDevSpec(%q).String() = %q", tt.in, s)
		}
	}
}

func TestParseDevSpecErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "not a DEVSPEC"},
		{"vda2", "not a DEVSPEC"},
		{"/dev/", "a path must be /dev/NAME"},
		{"/dev", "a path must be /dev/NAME"},
		{"/etc/passwd", "a path must be /dev/NAME"},
		{"/dev/../etc/passwd", "not clean"},
		{"/dev//vda", "not clean"},
		{"/dev/vda/", "not clean"},
		{"/dev/vd\x01a", "control characters"},
		{"/dev/" + strings.Repeat("a", maxPath), "at most 4096"},
		{"uuid=abcd", `unknown tag "uuid"`},
		{"ZFS=rpool/root", `unknown tag "ZFS"`},
		{"UUID=", "expected 1 to 64 hex digits"},
		{"UUID=---", "expected 1 to 64 hex digits"},
		{"UUID=xyz", `'x' is not a hex digit`},
		{"PARTUUID=" + strings.Repeat("a", 65), "expected 1 to 64 hex digits"},
		{"LABEL=", "expected 1 to 255"},
		{"PARTLABEL=" + strings.Repeat("x", 256), "label of 256 bytes"},
		{"LABEL=\xff", "not valid UTF-8"},
		{"LABEL=a\nb", "control characters"},
		{"none", "not a DEVSPEC"},
	}
	for _, tt := range tests {
		_, err := ParseDevSpec(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrNotDevSpec) {
			t.Errorf("ParseDevSpec(%.40q) error = %v, want one containing %q and wrapping ErrNotDevSpec", tt.in, err, tt.want)
		}
	}
}
