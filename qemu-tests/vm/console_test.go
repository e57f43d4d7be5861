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
