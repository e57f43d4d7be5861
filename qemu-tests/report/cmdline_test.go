// SPDX-License-Identifier: Apache-2.0

package report

import (
	"path"
	"slices"
	"strings"
	"testing"
)

func TestSplitCmdline(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  console=ttyS0   panic=-1\n", []string{"console=ttyS0", "panic=-1"}},
		{`"keel.test.write=/a:b c" quiet`, []string{"keel.test.write=/a:b c", "quiet"}},
		{`x="a b" y`, []string{"x=a b", "y"}},
		{`""`, []string{""}},
		{`unterminated="a b`, []string{"unterminated=a b"}},
	}
	for _, tt := range tests {
		if got := SplitCmdline(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("SplitCmdline(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestActions(t *testing.T) {
	tests := []struct {
		cmdline string
		want    []Action
		errs    int
	}{
		{"quiet slot=a", nil, 0},
		{
			`keel.test.write=/etc/x:1 "keel.test.write=/var/y:a b:c" keel.test.cat=/etc/x`,
			[]Action{
				{Param: ParamWrite, Path: "/etc/x", Content: "1"},
				{Param: ParamWrite, Path: "/var/y", Content: "a b:c"},
				{Param: ParamCat, Path: "/etc/x"},
			}, 0,
		},
		{"keel.test.write=/etc/x:", []Action{{Param: ParamWrite, Path: "/etc/x"}}, 0},
		{"keel.test.write=/etc/x keel.test.cat=/a", []Action{{Param: ParamCat, Path: "/a"}}, 1},
		{"keel.test.write=rel:x keel.test.cat=/a/../b keel.test.cat=/ keel.test.cat", nil, 4},
	}
	for _, tt := range tests {
		got, errs := Actions(tt.cmdline)
		if !slices.Equal(got, tt.want) || len(errs) != tt.errs {
			t.Errorf("Actions(%q) = %+v, %v; want %+v and %d errors", tt.cmdline, got, errs, tt.want, tt.errs)
		}
	}
}

func TestParamsRoundTrip(t *testing.T) {
	w, err := WriteParam("/var/lib/x", "two words")
	if err != nil {
		t.Fatal(err)
	}
	c, err := CatParam("/var/lib/x")
	if err != nil {
		t.Fatal(err)
	}
	got, errs := Actions("quiet " + w + " " + c)
	want := []Action{{ParamWrite, "/var/lib/x", "two words"}, {ParamCat, "/var/lib/x", ""}}
	if !slices.Equal(got, want) || errs != nil {
		t.Errorf("Actions of %q %q = %+v, %v; want %+v", w, c, got, errs, want)
	}
}

func TestParamsRejectInexpressible(t *testing.T) {
	bad := []struct{ path, content string }{
		{"relative", "x"}, {"/a/./b", "x"}, {"/a", `say "hi"`}, {"/a", "two\nlines"}, {"/a b", "x"}, {"/a:b", "x"},
	}
	for _, b := range bad {
		if p, err := WriteParam(b.path, b.content); err == nil {
			t.Errorf("WriteParam(%q, %q) = %q, want an error", b.path, b.content, p)
		}
	}
	for _, p := range []string{"x", "/a b", `/a"`} {
		if got, err := CatParam(p); err == nil {
			t.Errorf("CatParam(%q) = %q, want an error", p, got)
		}
	}
}

// FuzzActions checks that any command line yields only well-formed actions
// and that parameters without quotes or white space split back unchanged.
func FuzzActions(f *testing.F) {
	f.Add(`keel.test.write=/a:b "keel.test.cat=/c d" x`)
	f.Add(`"=`)
	f.Fuzz(func(t *testing.T, cmdline string) {
		actions, _ := Actions(cmdline)
		for _, a := range actions {
			if !path.IsAbs(a.Path) || path.Clean(a.Path) != a.Path || (a.Param != ParamWrite && a.Param != ParamCat) {
				t.Errorf("Actions(%q): malformed action %+v", cmdline, a)
			}
		}
		fields := strings.FieldsFunc(cmdline, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) })
		if !strings.Contains(cmdline, `"`) && !slices.Equal(SplitCmdline(cmdline), fields) {
			t.Errorf("SplitCmdline(%q) = %q, want %q", cmdline, SplitCmdline(cmdline), fields)
		}
	})
}
