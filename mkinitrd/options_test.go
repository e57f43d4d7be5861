// SPDX-License-Identifier: Apache-2.0

package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestChooseShell(t *testing.T) {
	tests := []struct {
		name        string
		shell       string
		set, locked bool
		want        string
		err         string
	}{
		{"default", "builtin", false, false, "builtin", ""},
		{"busybox", "/opt/bb", true, false, "/opt/bb", ""},
		{"none", "none", true, false, "", ""},
		{"empty", "", true, false, "", "expected builtin, none or a busybox path"},
		{"locked", "builtin", false, true, "", ""},
		{"locked none", "none", true, true, "", ""},
		{"locked builtin", "builtin", true, true, "", "--shell builtin with --locked"},
		{"locked explicit", "/bin/busybox", true, true, "", "--shell /bin/busybox with --locked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseShell(tt.shell, tt.set, tt.locked)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("chooseShell = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	init := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(init, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--out", "x.img", "--kver", "6.1", "--init", init, "--shell", "none",
		"--modules", "a, b", "--modules", "c", "--add", "s:/d", "--compress", "gzip"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.modules, []string{"a", "b", "c"}) || !slices.Equal(o.adds, []string{"s:/d"}) ||
		o.compress != "gzip" || o.shell != "" || o.kver != "6.1" {
		t.Fatalf("options %+v", o)
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--kver", "6.1"}, "--out is required"},
		{[]string{"--out", "x", "--init", init, "--compress", "lz4"}, "--compress: compression \"lz4\""},
		{[]string{"--out", "x", "--init", init, "extra"}, "unexpected argument \"extra\""},
		{[]string{"--out", "x", "--init", init, "--locked", "--shell", "/bin/busybox"}, "a locked initramfs has no shell"},
	}
	for _, b := range bad {
		if _, err := parseFlags(b.args, io.Discard); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("parseFlags(%q) = %v, want %q", b.args, err, b.want)
		}
	}
}

func TestSourceDateEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if v, err := sourceDateEpoch(); err != nil || v != 1700000000 {
		t.Fatalf("sourceDateEpoch = %d, %v", v, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := sourceDateEpoch(); err == nil || !strings.Contains(err.Error(), "yesterday") {
		t.Fatalf("bad SOURCE_DATE_EPOCH accepted: %v", err)
	}
}

func TestModeString(t *testing.T) {
	tests := []struct {
		mode uint32
		want string
	}{
		{0o100644, "-rw-r--r--"},
		{0o040755, "drwxr-xr-x"},
		{0o041777, "drwxrwxrwt"},
		{0o120777, "lrwxrwxrwx"},
		{0o020600, "crw-------"},
		{0o060660, "brw-rw----"},
		{0o104755, "-rwsr-xr-x"},
		{0o102644, "-rw-r-Sr--"},
	}
	for _, tt := range tests {
		if got := modeString(tt.mode); got != tt.want {
			t.Errorf("modeString(%o) = %q, want %q", tt.mode, got, tt.want)
		}
	}
}
