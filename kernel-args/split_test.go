// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	kv := func(k, v string) Param { return Param{Key: k, Value: v, HasValue: true} }
	flag := func(k string) Param { return Param{Key: k} }
	tests := []struct {
		name, in string
		want     []Param
	}{
		{"empty", "", nil},
		{"blank", " \t\n ", nil},
		{"words", "quiet root=/dev/vda1  ro\n", []Param{flag("quiet"), kv("root", "/dev/vda1"), flag("ro")}},
		{"first equals splits", "opt=a=b", []Param{kv("opt", "a=b")}},
		{"empty value", "root=", []Param{kv("root", "")}},
		{"empty key", "=value", []Param{kv("", "value")}},
		{"lone equals", "=", []Param{kv("", "")}},
		{"quoted value", `opt="a b" x`, []Param{kv("opt", "a b"), flag("x")}},
		{"quoted word", `"opt=a b" x`, []Param{kv("opt", "a b"), flag("x")}},
		{"quote mid value", `root=LABEL="my disk"`, []Param{kv("root", "LABEL=my disk")}},
		{"equals inside quotes", `a="b=c d"`, []Param{kv("a", "b=c d")}},
		{"unbalanced runs to end", `a="b c d`, []Param{kv("a", "b c d")}},
		{"unbalanced at end", `a b"`, []Param{flag("a"), flag("b")}},
		{"empty quotes dropped", `"" a ""`, []Param{flag("a")}},
		{"quoted empty value", `a=""`, []Param{kv("a", "")}},
		{"tabs and CR", "a\tb\r\nc", []Param{flag("a"), flag("b"), flag("c")}},
		{"NUL separates", "a=1\x00b=2\x00", []Param{kv("a", "1"), kv("b", "2")}},
		{"non-UTF-8 kept", "a=\xff\xfe", []Param{kv("a", "\xff\xfe")}},
		{"NBSP is not space", "a=x\u00a0y", []Param{kv("a", "x\u00a0y")}},
		{"a UTF-8 label with a byte 0xA0 is one value", "root=PARTLABEL=voil\u00e0 x", []Param{kv("root", "PARTLABEL=voil\u00e0"), flag("x")}},
		{"double dash is a word", "a -- b", []Param{flag("a"), flag("--"), flag("b")}},
		{"repeats kept in order", "a=1 a=2", []Param{kv("a", "1"), kv("a", "2")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Split(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParamName(t *testing.T) {
	for key, want := range map[string]string{
		"root-a":                   "root_a",
		"root_a":                   "root_a",
		"rd.emergency.timeout":     "rd.emergency.timeout",
		"systemd.verity-root-data": "systemd.verity_root_data",
		"systemd.verity_root-hash": "systemd.verity_root_hash",
		"Slot":                     "Slot",
	} {
		if got := (Param{Key: key}).Name(); got != want {
			t.Errorf("Param{Key: %q}.Name() = %q, want %q", key, got, want)
		}
	}
}

func TestJoinRoundTrip(t *testing.T) {
	params := []Param{
		{Key: "quiet"},
		{Key: "root", Value: "LABEL=my disk", HasValue: true},
		{Key: "a b", Value: "c", HasValue: true},
		{Key: "", Value: "", HasValue: true},
		{Key: "x", Value: "tab\there", HasValue: true},
	}
	line := Join(params)
	if want := `quiet "root=LABEL=my disk" "a b=c" = "x=tab` + "\t" + `here"`; line != want {
		t.Errorf("Join = %q, want %q", line, want)
	}
	if got := Split(line); !reflect.DeepEqual(got, params) {
		t.Errorf("Split(Join(p)) = %#v, want %#v", got, params)
	}
	// A word holding the byte 0xA0, a space to the kernel, is quoted: bare,
	// the kernel read "--" after it as the end of its options, and an
	// option joined after that was lost to it.
	// So is a word "--" (from -""-, which does not end them): "--" bare
	// or quoted would.
	withA0 := []Param{{Key: "rd.x\xa0--"}, {Key: "keel.note", Value: "voil\u00e0", HasValue: true}, {Key: "--"}, {Key: "rd.watchdog", Value: "52", HasValue: true}}
	line = Join(withA0)
	if want := "\"rd.x\xa0--\" \"keel.note=voil\u00e0\" -\"\"- rd.watchdog=52"; line != want {
		t.Errorf("Join = %q, want %q", line, want)
	}
	if got := Split(line); !reflect.DeepEqual(got, withA0) {
		t.Errorf("Split(Join(p)) = %#v, want %#v", got, withA0)
	}
	if KernelOptions(line) != line {
		t.Errorf("KernelOptions(%q) = %q: the kernel ends its options inside a joined word", line, KernelOptions(line))
	}
}

// TestSplitKernel: the kernel's isspace (lib/ctype.c) is Latin-1's: 0xA0 is
// space, also as the second byte of a UTF-8 character; nothing else
// changes.
func TestSplitKernel(t *testing.T) {
	kv := func(k, v string) Param { return Param{Key: k, Value: v, HasValue: true} }
	flag := func(k string) Param { return Param{Key: k} }
	for _, c := range []struct {
		in   string
		want []Param
	}{
		{"a\xa0module_blacklist=ahci", []Param{flag("a"), kv("module_blacklist", "ahci")}},
		{"a=x\u00a0y", []Param{kv("a", "x\xc2"), flag("y")}},
		{"root=PARTLABEL=voil\u00e0 x", []Param{kv("root", "PARTLABEL=voil\xc3"), flag("x")}},
		{"a=\u00e9\u0085\xa1", []Param{kv("a", "\u00e9\u0085\xa1")}},
		{"\"a\xa0b\" c", []Param{flag("a\xa0b"), flag("c")}},
		{"quiet slot=b", []Param{flag("quiet"), kv("slot", "b")}},
	} {
		if got := SplitKernel(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitKernel(%q) = %#v, want %#v", c.in, got, c.want)
		}
	}
}

// TestKernelOptions: the command line is cut where the kernel ends its own
// parameters: at "--" as its next_arg reads a word.
func TestKernelOptions(t *testing.T) {
	for line, want := range map[string]string{
		"quiet -- single": "quiet ",
		"quiet":           "quiet",
		`a "--" b`:        "a ",
		`a -""- b`:        `a -""- b`,
		`a "--"x b`:       `a "--"x b`,
		`a --" b" c`:      `a --" b" c`,
		"a --=x b":        "a --=x b",
		"a\xa0-- b":       "a\xa0",
		`x="a -- b" -- c`: `x="a -- b" `,
		"--":              "",
		"":                "",
	} {
		if got := KernelOptions(line); got != want {
			t.Errorf("KernelOptions(%q) = %q, want %q", line, got, want)
		}
	}
}

func FuzzKernelOptions(f *testing.F) {
	for _, s := range []string{"quiet -- single", `a "--" b`, `a -""- b`, `x="a -- b" -- c`, "\"", "--"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := KernelOptions(s)
		if !strings.HasPrefix(s, k) || KernelOptions(k) != k {
			t.Fatalf("KernelOptions(%q) = %q: want a prefix that is cut no further", s, k)
		}
		// Without quotes, the kernel's split and next_arg's agree.
		if !strings.Contains(s, `"`) && !reflect.DeepEqual(SplitNextArg(s), SplitKernel(s)) {
			t.Fatalf("%q: SplitNextArg %q, SplitKernel %q", s, SplitNextArg(s), SplitKernel(s))
		}
	})
}

// TestSplitNextArg: the kernel's next_arg removes a word's leading quote
// (then its trailing one) and a value's leading quote (then the word's
// trailing one), never a quote inside.
func TestSplitNextArg(t *testing.T) {
	kv := func(k, v string) Param { return Param{Key: k, Value: v, HasValue: true} }
	for line, want := range map[string][]Param{
		`panic=5`:      {kv("panic", "5")},
		`panic="5"`:    {kv("panic", "5")},
		`"panic=5"`:    {kv("panic", "5")},
		`panic=5"`:     {kv("panic", `5"`)},
		`panic=1"0"`:   {kv("panic", `1"0"`)},
		`panic=""5`:    {kv("panic", `"5`)},
		`panic="`:      {kv("panic", "")},
		`"panic="5""`:  {kv("panic", `5"`)},
		`a="b c" d`:    {kv("a", "b c"), {Key: "d"}},
		`"--"`:         {{Key: "--"}},
		`-""-`:         {{Key: `-""-`}},
		"x\xa0panic=5": {{Key: "x"}, kv("panic", "5")},
	} {
		if got := SplitNextArg(line); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitNextArg(%q) = %q, want %q", line, got, want)
		}
	}
}
