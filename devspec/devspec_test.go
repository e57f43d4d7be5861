// SPDX-License-Identifier: Apache-2.0

package devspec

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Spec
	}{
		{"/dev/vda2", Spec{Path, "/dev/vda2"}},
		{"/dev/disk/by-partlabel/root-a", Spec{Path, "/dev/disk/by-partlabel/root-a"}},
		{"/dev/mapper/data", Spec{Path, "/dev/mapper/data"}},
		{"UUID=0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", Spec{UUID, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}},
		{"UUID=ABCD-1234", Spec{UUID, "abcd-1234"}},
		{"UUID=0123456789abcdef", Spec{UUID, "0123456789abcdef"}}, // NTFS-style serial
		{"PARTUUID=A1B2C3D4-01", Spec{PartUUID, "a1b2c3d4-01"}},
		{"PARTUUID=0a1b2c3d-0f", Spec{PartUUID, "0a1b2c3d-0f"}},
		{"PARTUUID=0FC63DAF-8483-4772-8E79-3D69D8477DE4", Spec{PartUUID, "0fc63daf-8483-4772-8e79-3d69d8477de4"}},
		{"LABEL=My Data", Spec{Label, "My Data"}},
		{"LABEL=a=b", Spec{Label, "a=b"}},
		{"PARTLABEL=root-a", Spec{PartLabel, "root-a"}},
		{"PARTLABEL=données", Spec{PartLabel, "données"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %#v, %v; want %#v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); !strings.EqualFold(s, tt.in) {
			t.Errorf("Parse(%q).String() = %q", tt.in, s)
		}
	}
	if s := OfPartLabel("bootstate"); s.String() != "PARTLABEL=bootstate" {
		t.Errorf("OfPartLabel = %v", s)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "not a DEVSPEC"},
		{"vda2", "not a DEVSPEC"},
		{"none", "not a DEVSPEC"},
		{"/dev/", "a path must be /dev/NAME"},
		{"/dev", "a path must be /dev/NAME"},
		{"/etc/passwd", "a path must be /dev/NAME"},
		{"/tmp/disk.img", "a path must be /dev/NAME"},
		{"/dev/../etc/passwd", "not clean"},
		{"/dev//vda", "not clean"},
		{"/dev/vda/", "not clean"},
		{"/dev/vd\x01a", "control characters"},
		{"/dev/vda\x7f", "control characters"},
		{"/dev/" + strings.Repeat("a", maxPath), "at most 4096"},
		{"uuid=abcd", `unknown tag "uuid"`},
		{"label=x", `unknown tag "label"`},
		{"ZFS=rpool/root", `unknown tag "ZFS"`},
		{"UUID=", "expected 1 to 64 hex digits"},
		{"UUID=---", "expected 1 to 64 hex digits"},
		{"UUID=xyz", `'x' is not a hex digit`},
		{"UUID=ab\ncd", `'\n' is not a hex digit`},
		{"UUID=" + strings.Repeat("a", 65), "expected 1 to 64 hex digits"},
		{"PARTUUID=", "expected a GPT partition GUID"},
		{"PARTUUID=1234", "expected a GPT partition GUID"},
		{"PARTUUID=0a1b2c3d-1", "or an MBR disk signature and partition number (0a1b2c3d-01)"},
		{"PARTUUID=0a1b2c3d-001", "expected a GPT partition GUID"},
		{"PARTUUID=0a1b2c3d--01", "expected a GPT partition GUID"},
		{"PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de", "expected a GPT partition GUID"},
		{"PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477deg", "expected a GPT partition GUID"},
		{"PARTUUID=0fc63daf84834772-8e79-3d69d8477de4", "expected a GPT partition GUID"},
		{"PARTUUID=00000000-00", "all-zero"},
		{"PARTUUID=00000000-0000-0000-0000-000000000000", "all-zero"},
		{"LABEL=", "expected 1 to 255"},
		{"PARTLABEL=" + strings.Repeat("x", 256), "label of 256 bytes"},
		{"LABEL=\xff", "not valid UTF-8"},
		{"LABEL=a\nb", "control characters"},
		{"PARTLABEL=root-a\x1b[2J", "control characters"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrNotDevSpec) {
			t.Errorf("Parse(%.40q) error = %v, want one containing %q and wrapping ErrNotDevSpec", tt.in, err, tt.want)
		}
	}
}

// TestErrorsAreShort: a hostile value is not echoed back in full.
func TestErrorsAreShort(t *testing.T) {
	for _, in := range []string{strings.Repeat("x", 10000), "ZFS" + strings.Repeat("x", 10000) + "=1", "PARTUUID=" + strings.Repeat("a", 10000)} {
		if _, err := Parse(in); err == nil || len(err.Error()) > 400 {
			t.Errorf("Parse(%d bytes): error of %d bytes: %.100v", len(in), len(err.Error()), err)
		}
	}
}

// FuzzParse: whatever Parse accepts is canonical (reparsing its String
// gives it back), holds no control byte, and has lowercase ids.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"/dev/vda", "/dev/../x", "UUID=AbC-1", "PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4",
		"PARTUUID=A1B2C3D4-0F", "LABEL=", "LABEL=a\x00b", "PARTLABEL=root-a", "PARTLABEL=données", "x=y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrNotDevSpec) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrNotDevSpec", s, err)
			}
			return
		}
		again, err := Parse(sp.String())
		if err != nil || again != sp {
			t.Fatalf("Parse(%q) = %v, but reparsing %q gives %v, %v", s, sp, sp.String(), again, err)
		}
		if hasControl(sp.Value) || sp.Value == "" {
			t.Fatalf("Parse(%q) = %#v: empty or holds a control byte", s, sp)
		}
		if (sp.Kind == UUID || sp.Kind == PartUUID) && sp.Value != strings.ToLower(sp.Value) {
			t.Fatalf("Parse(%q) = %#v: id not lowercased", s, sp)
		}
		if sp.Kind != Path && !utf8.ValidString(sp.Value) {
			t.Fatalf("Parse(%q) = %#v: not UTF-8", s, sp)
		}
	})
}
