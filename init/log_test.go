// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A console line that never drains is repeated in the kernel log once the
// stall wait is over; Console itself returns after its own bounded wait.
func TestConsoleStalledLineRepeatedInKmsg(t *testing.T) {
	var console, kmsg syncBuffer
	l := newLogger(&console)
	l.kmsg = &kmsg
	never := make(chan struct{})
	defer close(never)
	l.drain = func() error { <-never; return nil }
	l.drainWait, l.stallWait = time.Millisecond, time.Millisecond
	l.Console("\nkeel: BOOT FAILED: %s", "root device: timed out")
	if got := console.String(); got != "\nkeel: BOOT FAILED: root device: timed out\n" {
		t.Fatalf("console got %q", got)
	}
	want := "<3>keel: the console has not sent this line in 2ms: BOOT FAILED: root device: timed out\n"
	for kmsg.String() == "" {
		time.Sleep(time.Millisecond) // the repeat is written by its own goroutine
	}
	if got := kmsg.String(); got != want {
		t.Errorf("kmsg got %q, want %q", got, want)
	}
}

// A line that drains, even after Console stopped waiting for it, is not
// repeated; nor is anything written to a console with no kernel log open.
func TestConsoleDrainedLineNotRepeated(t *testing.T) {
	var console, kmsg syncBuffer
	l := newLogger(&console)
	l.kmsg = &kmsg
	l.drain = func() error { return nil }
	l.Console("at once")
	drained := make(chan struct{})
	close(drained)
	l.stallWait = time.Hour
	l.stalled("late but sent", drained) // returns at once: the line left
	if got := console.String(); got != "at once\n" {
		t.Errorf("console got %q", got)
	}
	if got := kmsg.String(); got != "" {
		t.Errorf("kmsg got %q, want nothing", got)
	}

	// No /dev/kmsg yet: the stalled line is not written anywhere again.
	var early syncBuffer
	e := newLogger(&early)
	never := make(chan struct{})
	defer close(never)
	e.drain = func() error { <-never; return nil }
	e.drainWait, e.stallWait = time.Millisecond, 0
	e.Console("stuck")
	e.stalled("stuck", never) // what Console's goroutine does, here in order
	if got := early.String(); got != "stuck\n" {
		t.Errorf("console without kmsg got %q", got)
	}
	if strings.Count(early.String(), "stuck") != 1 {
		t.Error("the stalled line was written to the console again")
	}
}

// A console that is not a file (a buffer in tests, a pipe) has no drain.
func TestConsoleNoDrainOffAFile(t *testing.T) {
	if l := newLogger(&bytes.Buffer{}); l.drain != nil {
		t.Error("a buffer console got a drain")
	}
}

// TestConsoleShowsControlCharacters: what a disk holds (a LUKS2 header's
// requirement names, a stick's partition labels) reaches the console and
// the kernel log with its control characters written out, so an escape
// sequence cannot clear the screen, move the cursor or make the terminal
// answer as typed input; tabs, newlines and other text stay.
func TestConsoleShowsControlCharacters(t *testing.T) {
	var console bytes.Buffer
	l := newLogger(&console)
	l.Console("keel: BOOT FAILED: config.requirements.mandatory: %s", "\x1b[2J\x1b[Hkeel: OK\r\u009b6n\x7f\ttab é\nnext")
	l.Errorf("seen: %s", "label\x1b]0;x\x07")
	l.Console("raw: %s", "label\x9b6n \xff é")
	got := console.String()
	want := "keel: BOOT FAILED: config.requirements.mandatory: \\x1b[2J\\x1b[Hkeel: OK\\x0d\\x9b6n\\x7f\ttab é\nnext\n" +
		"keel: seen: label\\x1b]0;x\\x07\n" +
		"raw: label\\x9b6n \\xff é\n"
	if got != want {
		t.Errorf("console:\n%q\nwant\n%q", got, want)
	}
}
