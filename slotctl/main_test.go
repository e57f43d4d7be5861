// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

type result struct {
	stdout, stderr string
	code           int
}

// slotctl runs the command in-process with a fixed clock and environment,
// on the test's own root (testRoot): never on the host's /run/keel.
func slotctl(t *testing.T, environ map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &env{
		stdout: &out,
		stderr: &errOut,
		getenv: func(k string) string { return environ[k] },
		now:    func() time.Time { return time.Unix(1800000000, 0) },
		root:   testRoot(t),
	})
	return result{out.String(), errOut.String(), code}
}

// testRoots holds each test's root (testRoot), by its *testing.T.
var testRoots sync.Map

// testRoot is the directory that stands for / in the commands a test runs
// (the running system's /run/keel: the state's lock, the boot report's
// default path, the data partition): one per test, the same for all its
// commands. The commands ran on the host's / and took the lock of a keel
// machine's keel-mark-good.service, or read its data partition.
func testRoot(t *testing.T) string {
	t.Helper()
	if r, ok := testRoots.Load(t); ok {
		return r.(string)
	}
	r, loaded := testRoots.LoadOrStore(t, t.TempDir())
	if !loaded {
		t.Cleanup(func() { testRoots.Delete(t) })
	}
	return r.(string)
}

// mustRun fails the test unless the command exits 0.
func mustRun(t *testing.T, environ map[string]string, args ...string) string {
	t.Helper()
	r := slotctl(t, environ, args...)
	if r.code != 0 {
		t.Fatalf("slotctl %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func TestHelpAndDispatch(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inOutput string
	}{
		{[]string{"help"}, 0, "keygen"},
		{[]string{"help", "seal"}, 0, "-image-id"},
		{[]string{"help", "nope"}, 2, `unknown command "nope"`},
		{nil, 2, "usage: slotctl COMMAND"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"inspect", "-h"}, 0, "usage: slotctl inspect"},
		{[]string{"seal", "--out", "x"}, 2, "--image is required"},
		{[]string{"keygen", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"keygen", "--out", "k", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"inspect"}, 2, "expected one verity partition"},
	}
	for _, tt := range tests {
		r := slotctl(t, nil, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.inOutput) {
			t.Errorf("slotctl %q: exit %d, output\n%s%s\nwant exit %d and %q", tt.args, r.code, r.stdout, r.stderr, tt.code, tt.inOutput)
		}
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for _, c := range commands() {
		r := slotctl(t, nil, "help", c.name)
		if r.code != 0 || !strings.Contains(r.stdout, "usage: slotctl "+c.name) {
			t.Errorf("slotctl help %s: exit %d\n%s", c.name, r.code, r.stdout)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args     []string
		wantPos  []string
		wantJSON bool
	}{
		{[]string{"v.img", "--json"}, []string{"v.img"}, true},
		{[]string{"--json", "v.img"}, []string{"v.img"}, true},
		{[]string{"a", "b"}, []string{"a", "b"}, false},
		{[]string{"--", "--json"}, []string{"--json"}, false},
		{[]string{"a", "--", "-x", "b"}, []string{"a", "-x", "b"}, false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "")
		pos, err := parse(fs, tt.args)
		if err != nil || !reflect.DeepEqual(pos, tt.wantPos) || *asJSON != tt.wantJSON {
			t.Errorf("parse(%q) = %q, json %v, %v; want %q, json %v", tt.args, pos, *asJSON, err, tt.wantPos, tt.wantJSON)
		}
	}
}

func TestWriteFileRefusesDevice(t *testing.T) {
	err := writeFile("/dev/null", 0o644, true, copyFrom([]byte("x")))
	if err == nil || !strings.Contains(err.Error(), "expected a regular file") {
		t.Errorf("writeFile(/dev/null): error %v, want one refusing a device", err)
	}
}

func TestWriteFileLeavesNoTempOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	err := writeFile(path, 0o644, true, func(w io.Writer) error { return errors.New("boom") })
	if err == nil {
		t.Fatal("writeFile succeeded although fill failed")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("writeFile left %v behind", ents)
	}
}

// needTool skips a test when an external tool is missing.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
}
