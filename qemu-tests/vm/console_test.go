// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestConsoleExpect(t *testing.T) {
	var log bytes.Buffer
	c := newConsole(&log, time.Now())
	// The line the first expect wants is cut across two writes, the second
	// of which may come before or after expect starts waiting. The
	// generous limits only bound a hang: no verdict here depends on them.
	c.Write([]byte("boot\r\nKEEL-PAY"))
	go func() {
		for _, chunk := range []string{"LOAD: start\r\nslot: ", "b\r\n# "} {
			c.Write([]byte(chunk))
		}
	}()
	b, s, e, err := c.expect(substring("KEEL-PAYLOAD: start"), time.Minute)
	if err != nil || lineAround(b, s, e) != "KEEL-PAYLOAD: start" {
		t.Fatalf("expect across chunks: %q, %v", lineAround(b, s, e), err)
	}
	// Only complete lines: "slot: " alone must not satisfy (.*)$ with "".
	re := regexp.MustCompile(`(?m)^slot: (.*)$`)
	b, s, e, err = c.expect(completeLines(re), time.Minute)
	if err != nil || re.FindStringSubmatch(string(b[s:e]))[1] != "b" {
		t.Fatalf("regexp: %q, %v", b[s:e], err)
	}
	// A prompt without a newline matches as a substring.
	if _, _, _, err := c.expect(substring("# "), time.Minute); err != nil {
		t.Fatalf("prompt: %v", err)
	}
	// The cursor moved past every match and all is written: the first line
	// cannot match again, and the wait must end in a timeout, however long.
	if _, _, _, err := c.expect(substring("boot"), 20*time.Millisecond); err == nil || errors.Is(err, errExited) {
		t.Errorf("expect of an already passed line: %v, want a timeout", err)
	}
	c.close()
	if _, _, _, err := c.expect(substring("never"), time.Minute); !errors.Is(err, errExited) {
		t.Errorf("expect after exit: %v, want errExited at once", err)
	}
	if strings.Contains(c.String(), "\r") {
		t.Errorf("carriage returns kept: %q", c.String())
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[1], "] KEEL-PAYLOAD: start") || !strings.HasSuffix(lines[3], "] #") {
		t.Errorf("log lines %q: want 4 timestamped lines, the partial prompt flushed at close", lines)
	}
}

// TestConsoleKernelLineInside feeds a program's line cut by kernel lines,
// as the serial port delivers it (the report line of a CI failure: "...}"
// then "[   28.855742] hrtimer: interrupt took 9363800 ns\n" then the
// program's "\n"), in every split into two writes.
func TestConsoleKernelLineInside(t *testing.T) {
	const k1, k2 = "[   28.855742] hrtimer: interrupt took 9363800 ns\n", "[12345.000001] second\n"
	tests := []struct {
		name, in, want string
	}{
		{"at the end", `boot.json {"a":1}` + k1 + "\nnext\n", k1 + `boot.json {"a":1}` + "\nnext\n"},
		{"in the middle", `boot.json {"a"` + k1 + `:1}` + "\n", k1 + `boot.json {"a":1}` + "\n"},
		{"two in a row", "ab" + k1 + k2 + "cd\n", k1 + k2 + "abcd\n"},
		{"at a line's start", "ab\n" + k1 + "cd\n", "ab\n" + k1 + "cd\n"},
		{"brackets of a program", "[ OK ] x [1.5] y [  1.123456]z [ 1.1234567] w\n", "[ OK ] x [1.5] y [  1.123456]z [ 1.1234567] w\n"},
		{"a prompt", "Continue? [y/N] ", "Continue? [y/N] "},
		{"cut at the end of output", "ab[   1.000000] never end", "ab[   1.000000] never end"},
		{"too many spaces for the kernel", "ab[" + strings.Repeat(" ", 5) + "1.000000] x\n", "ab[" + strings.Repeat(" ", 5) + "1.000000] x\n"},
		{"too long for the kernel", "ab[   1.000000] " + strings.Repeat("x", 1200) + "\n", "ab[   1.000000] " + strings.Repeat("x", 1200) + "\n"},
	}
	for _, tt := range tests {
		for cut := 0; cut <= len(tt.in); cut++ {
			var log bytes.Buffer
			c := newConsole(&log, time.Now())
			c.Write([]byte(tt.in[:cut]))
			c.Write([]byte(tt.in[cut:]))
			c.close()
			if got := c.String(); got != tt.want {
				t.Errorf("%s, cut at %d: console %q, want %q", tt.name, cut, got, tt.want)
			}
			// The log has each line once, with its timestamp.
			if got, want := strings.Count(log.String(), "\n"), len(strings.Split(strings.TrimSuffix(tt.want, "\n"), "\n")); got != want {
				t.Errorf("%s, cut at %d: log %q has %d lines, want %d", tt.name, cut, log.String(), got, want)
			}
		}
	}
	// The report line of the CI failure matches the expectation it failed.
	c := newConsole(nil, time.Now())
	c.Write([]byte("KEEL-SYSTEMD: boot.json {\"version\":1}" + k1 + "\n"))
	re := regexp.MustCompile(`(?m)KEEL-SYSTEMD: boot.json (\{.*\})$`)
	if b, s, e, err := c.expect(completeLines(re), time.Minute); err != nil || re.FindStringSubmatch(string(b[s:e]))[1] != `{"version":1}` {
		t.Errorf("report line: %v", err)
	}
	// A prompt already matched stays passed; the kernel line comes after it.
	c = newConsole(nil, time.Now())
	c.Write([]byte("Password: "))
	if _, _, _, err := c.expect(substring("Password: "), time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(k1 + "ok\n"))
	if got, want := c.String(), "Password: "+k1+"ok\n"; got != want {
		t.Errorf("after a matched prompt: %q, want %q", got, want)
	}
}

func TestConsoleTail(t *testing.T) {
	c := newConsole(nil, time.Now())
	for i := 0; i < 50; i++ {
		c.Write([]byte(strings.Repeat("x", i%3) + "\n"))
	}
	if got := c.tail(40); len(got) != 40 {
		t.Errorf("tail(40) has %d lines", len(got))
	}
}

func TestLineAround(t *testing.T) {
	b := []byte("one\ntwo three\nfour")
	tests := []struct {
		sub, want string
	}{{"one", "one"}, {"three", "two three"}, {"ou", "four"}}
	for _, tt := range tests {
		i := bytes.Index(b, []byte(tt.sub))
		if got := lineAround(b, i, i+len(tt.sub)); got != tt.want {
			t.Errorf("lineAround(%q) = %q, want %q", tt.sub, got, tt.want)
		}
	}
}
