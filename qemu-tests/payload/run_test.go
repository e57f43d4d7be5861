// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/report"
)

// fakeRoot is a guest root in a temporary directory; files maps guest paths
// to content.
func fakeRoot(t *testing.T, files map[string]string) system {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return system{
		root: root, args: []string{"/sbin/init"}, pid: 1,
		mount: func(_, target, _ string) error {
			return errors.New("mount not expected in this test: " + target)
		},
	}
}

// runReport runs the payload against s and parses what it printed.
func runReport(t *testing.T, s system) (report.Report, string) {
	t.Helper()
	var out bytes.Buffer
	run(&out, s)
	r, err := report.Parse(strings.Split(out.String(), "\n"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return r, out.String()
}

func TestRunReportsTheRoot(t *testing.T) {
	s := fakeRoot(t, map[string]string{
		"/proc/self/status":     "",
		"/proc/cmdline":         `console=ttyS0 keel.test.write=/var/new/file:hi "keel.test.cat=/etc/keel-test-marker" keel.test.cat=/none` + "\n",
		"/proc/mounts":          "overlay / overlay rw 0 0\nproc /proc proc rw 0 0\n",
		"/run/keel/boot.json":   "{\n  \"slot\": \"a\"\n}\n",
		"/etc/keel-test-marker": "slot-a\n",
	})
	r, out := runReport(t, s)
	if r.PID != 1 || !slices.Equal(r.Argv, []string{"/sbin/init"}) || r.Environ == nil || len(r.Environ) != 0 {
		t.Errorf("pid %d, argv %q, environ %#v", r.PID, r.Argv, r.Environ)
	}
	if m, ok := r.Mount("/"); !ok || m.FSType != "overlay" {
		t.Errorf("Mount(/) = %+v, %v", m, ok)
	}
	if string(r.BootJSON) != `{"slot":"a"}` {
		t.Errorf("boot.json %s: want it compacted to one line", r.BootJSON)
	}
	if !r.RootWritable || r.Marker == nil || *r.Marker != "slot-a\n" {
		t.Errorf("writable %v, marker %v", r.RootWritable, r.Marker)
	}
	if _, err := os.Stat(filepath.Join(s.root, ".keel-write-test")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the write test file was left behind: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(s.root, "var/new/file")); err != nil || string(b) != "hi" {
		t.Errorf("written file: %q, %v", b, err)
	}
	if c, _ := r.Cat("/etc/keel-test-marker"); c.Content != "slot-a\n" {
		t.Errorf("cat marker: %+v", c)
	}
	if c, _ := r.Cat("/none"); !c.Missing {
		t.Errorf("cat /none: %+v, want missing", c)
	}
	if len(r.Errors) != 0 || !r.Done {
		t.Errorf("errors %q, done %v\n%s", r.Errors, r.Done, out)
	}
}

func TestRunMountsProcWhenMissing(t *testing.T) {
	s := fakeRoot(t, nil)
	var mounted []string
	s.mount = func(source, target, fstype string) error {
		mounted = append(mounted, source+" "+target+" "+fstype)
		return nil
	}
	r, _ := runReport(t, s)
	want := []string{"proc " + filepath.Join(s.root, "proc") + " proc"}
	if !slices.Equal(mounted, want) {
		t.Errorf("mounts %q, want %q", mounted, want)
	}
	// With nothing mounted for real, the report says what it could not read
	// and still reaches its end.
	if r.BootJSON != nil || r.Marker != nil || len(r.Errors) != 2 || !r.Done {
		t.Errorf("boot.json %s, marker %v, errors %q, done %v", r.BootJSON, r.Marker, r.Errors, r.Done)
	}
}

func TestRunReportsFailures(t *testing.T) {
	s := fakeRoot(t, map[string]string{
		"/proc/cmdline":       "keel.test.write=no-slash:x keel.test.write=/ro/f:x",
		"/proc/mounts":        "",
		"/run/keel/boot.json": "{not json",
	})
	s.mount = func(_, _, _ string) error { return errors.New("EPERM") }
	if err := os.Mkdir(filepath.Join(s.root, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.root, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(s.root, 0o755) })
	r, out := runReport(t, s)
	if os.Geteuid() != 0 && (r.RootWritable || len(r.Writes) != 1 || r.Writes[0].Err == "") {
		t.Errorf("writable %v, writes %+v: want a read-only root and a failed write", r.RootWritable, r.Writes)
	}
	for _, want := range []string{"mount proc on /proc: EPERM", "no-slash", "is not JSON"} {
		if !strings.Contains(strings.Join(r.Errors, "\n"), want) {
			t.Errorf("errors %q: want one about %q\n%s", r.Errors, want, out)
		}
	}
	if !r.Done {
		t.Errorf("the payload must reach its end after errors\n%s", out)
	}
}
