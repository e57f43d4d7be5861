// SPDX-License-Identifier: Apache-2.0

package report

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	marker := "slot-b\n"
	console := []string{
		"[    1.0] some kernel line",
		Line(KeyStart, ""),
		Line(KeyPID, "7"), // a stale run: discarded by the next start
		Line(KeyStart, ""),
		Line(KeyPID, "1"),
		Line(KeyArgv, `["/sbin/init"]`),
		Line(KeyEnviron, `[]`),
		Line(KeyCmdline, "console=ttyS0 slot=b"),
		Line(KeyMounts, ""),
		Line(KeyMount, "/dev/mapper/root / squashfs ro,relatime 0 0"),
		"[    2.0] random: a kernel message between payload lines",
		Line(KeyMount, "overlay / overlay rw,lowerdir=/run/x 0 0"),
		Line(KeyBootJSON, `{"slot":"b"}`),
		Line(KeyRootWritable, "yes"),
		Line(KeyMarker, QuoteFile([]byte(marker), false)),
		Line(KeyWrite, "/var/x: ok"),
		Line(KeyWrite, "/etc/y: error: open /etc/y: read-only file system"),
		Line(KeyCat, "/var/x: "+QuoteFile([]byte("a: b\n"), false)),
		Line(KeyCat, "/nope: "+QuoteFile(nil, true)),
		Line(KeyError, "something"),
		Line(KeyDone, ""),
	}
	r, err := Parse(console)
	if err != nil {
		t.Fatal(err)
	}
	if r.PID != 1 || !slices.Equal(r.Argv, []string{"/sbin/init"}) || r.Environ == nil || len(r.Environ) != 0 {
		t.Errorf("pid %d argv %q environ %#v", r.PID, r.Argv, r.Environ)
	}
	if m, ok := r.Mount("/"); !ok || m.FSType != "overlay" || len(r.Mounts) != 2 {
		t.Errorf("Mount(/) = %+v, %v of %d mounts: want the later overlay of 2", m, ok, len(r.Mounts))
	}
	if string(r.BootJSON) != `{"slot":"b"}` || !r.RootWritable || r.Marker == nil || *r.Marker != marker {
		t.Errorf("boot.json %s, writable %v, marker %v", r.BootJSON, r.RootWritable, r.Marker)
	}
	wantWrites := []Result{{Path: "/var/x"}, {Path: "/etc/y", Err: "open /etc/y: read-only file system"}}
	if !slices.Equal(r.Writes, wantWrites) {
		t.Errorf("writes %+v, want %+v", r.Writes, wantWrites)
	}
	if c, ok := r.Cat("/var/x"); !ok || c.Content != "a: b\n" {
		t.Errorf("Cat(/var/x) = %+v, %v", c, ok)
	}
	if c, ok := r.Cat("/nope"); !ok || !c.Missing {
		t.Errorf("Cat(/nope) = %+v, %v: want missing", c, ok)
	}
	if !slices.Equal(r.Errors, []string{"something"}) || !r.Done {
		t.Errorf("errors %q, done %v", r.Errors, r.Done)
	}
}

func TestParseRejects(t *testing.T) {
	bad := [][]string{
		nil,
		{"no payload here"},
		{Line(KeyStart, ""), Line(KeyPID, "one")},
		{Line(KeyStart, ""), Line(KeyArgv, "[")},
		{Line(KeyStart, ""), Line(KeyBootJSON, "{truncated")},
		{Line(KeyStart, ""), Line(KeyMarker, "unquoted")},
		{Line(KeyStart, ""), Line(KeyCat, "/x: unquoted")},
		{Line(KeyStart, ""), Line(KeyMount, "too few")},
	}
	for _, lines := range bad {
		if _, err := Parse(lines); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", lines)
		}
	}
}

func TestMissingIsNotContent(t *testing.T) {
	// A file whose content is the word "missing" must not read as absent.
	q := QuoteFile([]byte(Missing), false)
	if s, err := unquoteFile(q); err != nil || s == nil || *s != Missing {
		t.Errorf("unquoteFile(%s) = %v, %v", q, s, err)
	}
}

// FuzzParse feeds arbitrary console text: Parse must not panic, and quoted
// file content must round-trip.
func FuzzParse(f *testing.F) {
	f.Add(Line(KeyStart, "")+"\n"+Line(KeyCat, "/x: \"a\"")+"\n"+Line(KeyDone, ""), "content\n")
	f.Fuzz(func(t *testing.T, console, content string) {
		_, _ = Parse(strings.Split(console, "\n"))
		r, err := Parse([]string{Line(KeyStart, ""), Line(KeyMarker, QuoteFile([]byte(content), false))})
		if err != nil || r.Marker == nil || *r.Marker != content {
			t.Errorf("marker %q: parsed %v, %v", content, r.Marker, err)
		}
	})
}
