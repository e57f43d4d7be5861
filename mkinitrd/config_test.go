// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	in := "# keel\n\n  trust = /etc/keel/a.pub \r\ntrust=/etc/keel/b.pub\ncmdline=\"rd.timeout=30 quiet\"\n\t# indented comment\nlocked='yes'\nmodules=a,b\n"
	got, err := parseConfig("f.conf", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []configEntry{
		{"trust", "/etc/keel/a.pub", 3}, {"trust", "/etc/keel/b.pub", 4},
		{"cmdline", "rd.timeout=30 quiet", 5}, {"locked", "yes", 7}, {"modules", "a,b", 8},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("parseConfig =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"locked\n", `f.conf:1: "locked": expected KEY=VALUE`},
		{"\n\ntrust=\n", "f.conf:3: trust has no value: expected trust=VALUE"},
		{"Trust=x\n", `f.conf:1: key "Trust": expected an option name`},
		{"--trust=x\n", `f.conf:1: key "--trust"`},
		{"=x\n", `f.conf:1: key "": expected`},
		{"cmdline=\"\"\n", "f.conf:1: cmdline has no value"},
		{"trust=a\x00\n", "f.conf: expected a text file of KEY=VALUE lines"},
	}
	for _, tt := range tests {
		if _, err := parseConfig("f.conf", []byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseConfig(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

// testInit is a stand-in init binary for parseFlags.
func testInit(t *testing.T) string {
	t.Helper()
	init := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(init, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	return init
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mkinitrd.conf")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFlags(t *testing.T) {
	init := testInit(t)
	conf := writeConfig(t, "trust=/k/a.pub\ntrust=/k/b.pub\nmodules=x,y\ncmdline=quiet rd.timeout=9\nshell=none\ncompress=gzip\nmax-unconfirmed=5\n")
	base := []string{"--out", "x.img", "--kver", "6.1", "--init", init, "--config", conf}
	o, err := parseFlags(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.trust, []string{"/k/a.pub", "/k/b.pub"}) || !slices.Equal(o.modules, []string{"x", "y"}) ||
		o.cmdline != "quiet rd.timeout=9" || o.shell != "" || o.compress != "gzip" || o.maxUnconfirmed != 5 {
		t.Fatalf("options from the file: %+v", o)
	}
	// The command line overrides the file, lists included.
	o, err = parseFlags(append(base, "--trust", "/k/c.pub", "--cmdline", "debug", "--shell", "builtin"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.trust, []string{"/k/c.pub"}) || o.cmdline != "debug" || o.shell != "builtin" ||
		!slices.Equal(o.modules, []string{"x", "y"}) {
		t.Fatalf("options with overrides: %+v", o)
	}
	for _, skip := range [][]string{{"--no-config"}, {"--config", ""}} {
		o, err = parseFlags(append(base, skip...), io.Discard)
		if err != nil || len(o.trust) != 0 || o.cmdline != "" {
			t.Fatalf("%q: options %+v, %v; want no config read", skip, o, err)
		}
	}
}

func TestConfigLockedShell(t *testing.T) {
	// A locked file with a shell is refused as the flags would be.
	conf := writeConfig(t, "locked=yes\ntrust=/k/a.pub\nshell=/bin/busybox\n")
	_, err := parseFlags([]string{"--out", "x", "--kver", "6.1", "--init", testInit(t), "--config", conf}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "a locked initramfs has no shell") {
		t.Fatalf("err %v, want the locked shell refusal", err)
	}
	conf = writeConfig(t, "locked=on\ntrust=/k/a.pub\n")
	o, err := parseFlags([]string{"--out", "x", "--kver", "6.1", "--init", testInit(t), "--config", conf}, io.Discard)
	if err != nil || !o.locked || o.shell != "" || !o.dataEncrypted {
		t.Fatalf("locked=on: %+v, %v", o, err)
	}
}

func TestConfigFlagErrors(t *testing.T) {
	init := testInit(t)
	tests := []struct{ conf, want string }{
		{"trust=a\nwatchdg=30\n", `:2: unknown key "watchdg": expected one of `},
		{"out=/boot/x\n", ":1: out: expected only on the command line (--out)"},
		{"kver=6.1\n", ":1: kver: expected only on the command line"},
		{"config=/x\n", ":1: config: expected only on the command line"},
		{"cmdline=a\n\ncmdline=b\n", ":3: cmdline set again (first on line 1): expected it once"},
		{"locked=maybe\n", ":1: locked=maybe: "},
		{"max-unconfirmed=many\n", ":1: max-unconfirmed=many: "},
	}
	for _, tt := range tests {
		conf := writeConfig(t, tt.conf)
		_, err := parseFlags([]string{"--out", "x", "--kver", "6.1", "--init", init, "--config", conf}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), conf+tt.want) {
			t.Errorf("config %q: err %v, want %q", tt.conf, err, conf+tt.want)
		}
	}
	missing := filepath.Join(t.TempDir(), "none.conf")
	_, err := parseFlags([]string{"--out", "x", "--kver", "6.1", "--init", init, "--config", missing}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing --config file: err %v, want it named", err)
	}
}

func TestConfigUnknownKeyListsKeys(t *testing.T) {
	conf := writeConfig(t, "bogus=1\n")
	_, err := parseFlags([]string{"--out", "x", "--kver", "6.1", "--init", testInit(t), "--config", conf}, io.Discard)
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	for _, k := range []string{"trust", "locked", "modules", "cmdline", "shell", "luks-keyfile"} {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error %q does not list key %s", err, k)
		}
	}
	for _, k := range []string{"kver", "sysroot", "no-config"} {
		if strings.Contains(err.Error(), " "+k+",") {
			t.Errorf("error %q lists per-build key %s", err, k)
		}
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		args     []string
		want     string
		required bool
	}{
		{nil, defaultConfig, false},
		{[]string{"--sysroot", "/."}, defaultConfig, false},
		{[]string{"--sysroot", "/srv/root"}, "", false},
		{[]string{"--sysroot", "/srv/root", "--config", "/srv/root/etc/keel/mkinitrd.conf"}, "/srv/root/etc/keel/mkinitrd.conf", true},
		{[]string{"--config", "/x.conf"}, "/x.conf", true},
		{[]string{"--config", ""}, "", false},
		{[]string{"--config", "/x.conf", "--no-config"}, "", false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.String("sysroot", "/", "")
		fs.String("config", defaultConfig, "")
		fs.Bool("no-config", false, "")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if got, req := configPath(fs, set); got != tt.want || req != tt.required {
			t.Errorf("configPath(%q) = %q, %v; want %q, %v", tt.args, got, req, tt.want, tt.required)
		}
	}
}

// FuzzParseConfig: any bytes give entries or an error naming the file, and
// entries written back as KEY="VALUE" lines parse to the same entries.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"# keel\ntrust=/etc/keel/a.pub\nlocked=yes\n",
		"cmdline=\"rd.timeout=30 quiet\"\nmodules = a, b\n",
		"x\n", "=\n", "a='\n", "a=\"\"\"\n", "\xff=1\n", "a-b-=c\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseConfig("f.conf", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.conf") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		var sb strings.Builder
		for i, e := range entries {
			if !validKey(e.key) || e.value == "" || (i > 0 && e.line <= entries[i-1].line) {
				t.Fatalf("bad entry %+v", e)
			}
			if strings.ContainsAny(e.value, "\n") {
				t.Fatalf("value %q spans lines", e.value)
			}
			fmt.Fprintf(&sb, "%s=\"%s\"\n", e.key, e.value)
		}
		again, err := parseConfig("f.conf", []byte(sb.String()))
		if err != nil {
			t.Fatalf("re-parse of %q: %v", sb.String(), err)
		}
		for i := range again {
			if again[i].key != entries[i].key || again[i].value != entries[i].value {
				t.Fatalf("round trip: %+v, want %+v", again[i], entries[i])
			}
		}
	})
}

// FuzzConfigFlags: any config file gives options or an error naming the
// file (or a flag), never a panic.
func FuzzConfigFlags(f *testing.F) {
	for _, s := range []string{
		"trust=/k/a.pub\nlocked=yes\n", "shell=none\ncompress=gzip\n", "max-unconfirmed=300\n",
		"add=a:/b\nadd=c:/d\n", "data-must-be-encrypted=yes\ndata-may-be-plain=yes\n", "v=off\n",
	} {
		f.Add([]byte(s))
	}
	init := filepath.Join(f.TempDir(), "init")
	if err := os.WriteFile(init, []byte("x"), 0o755); err != nil {
		f.Fatal(err)
	}
	conf := filepath.Join(f.TempDir(), "mkinitrd.conf")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := parseFlags([]string{"--out", "x", "--kver", "6.1", "--init", init, "--config", conf}, io.Discard)
		if err == nil && o.locked && o.shell != "" {
			t.Fatalf("locked with shell %q", o.shell)
		}
	})
}

// TestShippedConfig: the Debian package's /etc/keel/mkinitrd.conf
// (packaging/mkinitrd.conf) reads as it ships (all comments), each of its
// commented examples is a valid line on its own, and it documents every key.
func TestShippedConfig(t *testing.T) {
	b, err := os.ReadFile("../packaging/mkinitrd.conf")
	if err != nil {
		t.Fatal(err)
	}
	if entries, err := parseConfig("mkinitrd.conf", b); err != nil || len(entries) != 0 {
		t.Fatalf("shipped config: %v, %v; want only comments", entries, err)
	}
	init := testInit(t)
	documented := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		example, ok := strings.CutPrefix(line, "#")
		if !ok || !strings.Contains(example, "=") || strings.Contains(example, " ") && !strings.HasPrefix(example, "cmdline=") {
			continue
		}
		key, _, _ := strings.Cut(example, "=")
		documented[key] = true
		conf := writeConfig(t, example+"\n")
		args := []string{"--out", "x", "--kver", "6.1", "--init", init, "--config", conf}
		if key == "locked" {
			args = append(args, "--trust", "k.pub")
		}
		if _, err := parseFlags(args, io.Discard); err != nil {
			t.Errorf("example %q: %v", example, err)
		}
	}
	// Every flag --help lists that a config may set (flag.PrintDefaults
	// starts each with "  -NAME").
	var help strings.Builder
	if _, err := parseFlags([]string{"--help"}, &help); err == nil {
		t.Fatal("--help parsed")
	}
	n := 0
	for _, line := range strings.Split(help.String(), "\n") {
		name, ok := strings.CutPrefix(line, "  -")
		if !ok {
			continue
		}
		name = strings.Fields(name)[0]
		n++
		if !documented[name] && !perBuildKeys[name] && name != "v" && name != "init" {
			t.Errorf("key %s is not documented in packaging/mkinitrd.conf", name)
		}
	}
	if n < 10 {
		t.Fatalf("--help listed %d flags:\n%s", n, help.String())
	}
}
