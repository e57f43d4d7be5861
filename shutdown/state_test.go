// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"reflect"
	"strings"
	"testing"
)

var sampleState = State{
	Mounts: []Mounted{
		{Role: "image", Target: "/run/keel/lower", FSType: "squashfs", Source: "/dev/mapper/keel-root-a"},
		{Role: "data", Target: "/run/keel/data", FSType: "btrfs", Source: "/dev/mapper/keel-data"},
		{Role: "root", Target: "/", FSType: "overlay", Source: "overlay"},
		{Role: "bind", Target: "/var", Source: "/run/keel/data/@var"},
		{Role: "bind", Target: "/my home", Source: "-"},
		// Only space, tab, newline and backslash are escaped: the rest
		// must stay in its field.
		{Role: "bind", Target: "/srv/a\u00a0-\u00a0b\vc", Source: "/run/keel/data/x\u0085y"},
	},
	DM: []string{"keel-root-a", "keel-data"},
}

func TestStateRoundTrip(t *testing.T) {
	b := sampleState.Marshal()
	if !strings.HasPrefix(string(b), "keel-undo 1\nmount image /run/keel/lower squashfs /dev/mapper/keel-root-a\n") ||
		!strings.Contains(string(b), "mount bind /var - /run/keel/data/@var\n") ||
		!strings.Contains(string(b), `mount bind /my\040home - -`) ||
		!strings.HasSuffix(string(b), "dm keel-root-a\ndm keel-data\n") {
		t.Errorf("record:\n%s", b)
	}
	got, err := ParseState(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleState
	want.Mounts = append([]Mounted(nil), want.Mounts...)
	want.Mounts[4].Source = "" // "-" is the empty field
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseStateErrors(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "expected \"keel-undo 1\"",
		"keel-undo 2\n":                   "expected \"keel-undo 1\"",
		"keel-undo 1\nmount a b c d\n":    `mount target "b": expected an absolute path`,
		"keel-undo 1\ndm a/b\n":           `device-mapper name "a/b"`,
		"keel-undo 1\ndm -\n":             `device-mapper name ""`,
		"keel-undo 1\numount /x\n":        `line 2 "umount /x": expected`,
		"keel-undo 1\ndm a\nmount / x\n":  "line 3",
		"keel-undo 1\ndm keel-data\n\n\n": "",
	} {
		_, err := ParseState([]byte(in))
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", in, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

// FuzzState: whatever parses marshals back to a record that parses to the
// same state.
func FuzzState(f *testing.F) {
	f.Add(sampleState.Marshal())
	f.Add([]byte("keel-undo 1\ndm x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(b)
		if err != nil {
			return
		}
		again, err := ParseState(s.Marshal())
		if err != nil {
			t.Fatalf("re-parse: %v\n%s", err, s.Marshal())
		}
		if !reflect.DeepEqual(s, again) {
			t.Fatalf("round trip %+v != %+v", s, again)
		}
	})
}
