// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
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
	l.printk = writeTemp(t, "7\t4\t1\t7\n")
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

// TestConsoleDrainPanicContained: a panic in the logger's own goroutines
// (the console's drain, the repeat of a stalled line) ends there: it would
// otherwise end the process, and PID 1's end is a kernel panic. Console
// returns, and the next line is written.
func TestConsoleDrainPanicContained(t *testing.T) {
	var console syncBuffer
	l := newLogger(&console)
	l.printk = writeTemp(t, "7\t4\t1\t7\n")
	l.drain = func() error { panic("drain") }
	l.Console("first")
	stalled, drainHit, kmsgHit := make(chan struct{}), make(chan struct{}), make(chan struct{})
	l.drain = func() error { <-stalled; close(drainHit); panic("late drain") }
	l.kmsg = panicWriter(kmsgHit)
	l.drainWait, l.stallWait = time.Millisecond, time.Millisecond
	l.Console("second") // not drained: its repeat in the kernel log panics
	<-kmsgHit
	close(stalled)
	<-drainHit
	l.drain = nil
	l.Console("third")
	if got := console.String(); got != "first\nsecond\nthird\n" {
		t.Errorf("console got %q", got)
	}
}

// panicWriter closes its channel and panics.
type panicWriter chan struct{}

func (w panicWriter) Write([]byte) (int, error) { close(w); panic("kmsg") }

// pipeConsole is a logger whose console is a pipe's write end, opened once
// more non-blocking as openKmsg opens the console, and the pipe's read end.
func pipeConsole(t *testing.T) (*os.File, *logger) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	l := newLogger(w)
	l.drain = nil
	l.openConsole(fmt.Sprintf("/proc/self/fd/%d", w.Fd()))
	if l.consoleFD < 0 {
		t.Fatal("the console was not opened again")
	}
	t.Cleanup(func() {
		if l.consoleFD >= 0 {
			unix.Close(l.consoleFD)
		}
	})
	return r, l
}

// TestConsoleFullNeverBlocks: a console that takes no more output (a
// serial port held by flow control, its tty buffer full; here a pipe
// nobody reads, filled to the brim) never stops the logger: Console, a
// log line before /dev/kmsg is open and the passphrase prompt's writes all
// return, each line refused is repeated in the kernel log, and once the
// console takes output again the next line reaches it. It used to block in
// the write, the logger's lock held: every later log line, the emergency
// policy and the reboot waited for an XON that might never come.
func TestConsoleFullNeverBlocks(t *testing.T) {
	r, l := pipeConsole(t)
	var kmsg syncBuffer
	l.printk = writeTemp(t, "4\t4\t1\t7\n") // quiet
	l.putWait = time.Millisecond
	for l.put(strings.Repeat("x", 4096)) { // fill the pipe
	}
	if !l.stuck {
		t.Error("a console whose wait ran out is not taken for stuck")
	}
	l.putWait = time.Hour            // stuck: no line waits for it any more
	l.Infof("before the kernel log") // dropped: nowhere to repeat it
	l.kmsg = &kmsg
	l.Console("keel: BOOT FAILED: %s", "root device: timed out")
	if n, err := fmt.Fprint(consoleWriter{l}, "Passphrase for data (/dev/vda3): "); n != 0 || !errors.Is(err, errConsoleFull) {
		t.Errorf("prompt written to a full console: %d, %v; want 0, %v", n, err, errConsoleFull)
	}
	want := "<3>keel: the console takes no more output (flow control?), so this line is here: BOOT FAILED: root device: timed out\n" +
		"<3>keel: the console takes no more output (flow control?), so this line is here: Passphrase for data (/dev/vda3):\n"
	if got := kmsg.String(); got != want {
		t.Errorf("kmsg got %q, want %q", got, want)
	}
	// XON: the pipe is emptied, without waiting (os.Pipe's ends are
	// non-blocking).
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	drained := 0
	buf := make([]byte, 64<<10)
	if err := rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.Read(int(fd), buf)
			if n <= 0 || err != nil {
				return true
			}
			drained += n
		}
	}); err != nil {
		t.Fatal(err)
	}
	if drained == 0 {
		t.Fatal("nothing was in the pipe")
	}
	l.Console("keel: after XON")
	n, err := r.Read(buf)
	if got := string(buf[:n]); err != nil || got != "keel: after XON\n" {
		t.Errorf("console after draining got %q, %v", got, err)
	}
	if l.stuck {
		t.Error("a console that took a line is still taken for stuck")
	}
}

// TestConsoleMomentarilyFullWaits: a console whose buffer is full for a
// moment (a shell's echo and the kernel's lines ahead of a signal's log
// line on a slow serial port; a CI boot lost "keel: terminated received"
// to it) gets its line once it has room, not the kernel log's repeat.
func TestConsoleMomentarilyFullWaits(t *testing.T) {
	r, l := pipeConsole(t)
	var kmsg syncBuffer
	l.kmsg = &kmsg
	full := 0
	for {
		n, err := unix.Write(l.consoleFD, make([]byte, 4096))
		if err != nil {
			break
		}
		full += n
	}
	l.putWait = time.Hour // the reader below frees the room
	got := make(chan string, 1)
	go func() {
		var all []byte
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil { // EOF: both write ends closed below
				got <- string(all[min(full, len(all)):])
				return
			}
		}
	}()
	l.Console("keel: terminated received")
	unix.Close(l.consoleFD) // and the pipe's own write end: the reader's EOF
	l.consoleFD = -1
	l.console.(*os.File).Close()
	if s := <-got; s != "keel: terminated received\n" {
		t.Errorf("console got %q after the filler", s)
	}
	if s := kmsg.String(); s != "" {
		t.Errorf("the line went to the kernel log: %q", s)
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
// answer as typed input; tabs and other text stay, and a line after a
// newline is indented, so that it cannot pass for the init's own.
func TestConsoleShowsControlCharacters(t *testing.T) {
	var console bytes.Buffer
	l := newLogger(&console)
	l.Console("keel: BOOT FAILED: config.requirements.mandatory: %s", "\x1b[2J\x1b[Hkeel: OK\r\u009b6n\x7f\ttab é\nnext")
	l.Errorf("seen: %s", "label\x1b]0;x\x07")
	l.Console("raw: %s", "label\x9b6n \xff é")
	got := console.String()
	want := "keel: BOOT FAILED: config.requirements.mandatory: \\x1b[2J\\x1b[Hkeel: OK\\x0d\\x9b6n\\x7f\ttab é\n  next\n" +
		"keel: seen: label\\x1b]0;x\\x07\n" +
		"raw: label\\x9b6n \\xff é\n"
	if got != want {
		t.Errorf("console:\n%q\nwant\n%q", got, want)
	}
}

// TestRepeatPrio: a console line repeated in the kernel log gets a
// priority the console prints (below the console log level: `quiet` is 4,
// `loglevel=3` is 3), KERN_ERR at most, KERN_ALERT at least. At KERN_ERR
// always, a `loglevel=3` boot printed the repeat of a line the console
// refused (a BOOT FAILED, the passphrase prompt) on no console at all.
func TestRepeatPrio(t *testing.T) {
	for _, tc := range []struct {
		printk string
		want   int
	}{
		{"7\t4\t1\t7\n", 3}, {"4\t4\t1\t7\n", 3}, {"3\t4\t1\t7\n", 2}, {"2 4 1 7", 1},
		{"1\t4\t1\t7\n", 1}, {"15\n", 3}, {"", 3}, {"x 4 1 7", 3}, {"-1", 1},
	} {
		l := newLogger(&bytes.Buffer{})
		l.printk = writeTemp(t, tc.printk)
		if got := l.repeatPrio(); got != tc.want {
			t.Errorf("console log level %q: priority %d, want %d", tc.printk, got, tc.want)
		}
	}
	l := newLogger(&bytes.Buffer{})
	l.printk = "/nonexistent/printk"
	if got := l.repeatPrio(); got != prioErr {
		t.Errorf("no printk file: priority %d, want %d", got, prioErr)
	}

	var kmsg syncBuffer
	l = newLogger(&bytes.Buffer{})
	l.kmsg, l.printk = &kmsg, writeTemp(t, "3 4 1 7")
	l.mu.Lock()
	l.refused("keel: BOOT FAILED: x")
	l.mu.Unlock()
	if got, want := kmsg.String(), "<2>keel: the console takes no more output (flow control?), so this line is here: BOOT FAILED: x\n"; got != want {
		t.Errorf("kmsg at loglevel=3: %q, want %q", got, want)
	}
}

// writeTemp writes content to a new file and returns its path.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTruncate: control characters, C1 and bytes that are not UTF-8 are
// written out; a long line is cut on a character's boundary, so no start
// of a sequence (0xee 0x9b of U+E6DB: 0x9b is an 8-bit CSI) reaches the
// console.
func TestTruncate(t *testing.T) {
	long := strings.Repeat("a", maxLine-1) + "\ue6db" + "tail"
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"esc \x1b[2J here", `esc \x1b[2J here`},
		{"c1 \u009b and raw \x9b", `c1 \x9b and raw \x9b`},
		{"label x\nkeel: root verified", "label x\n  keel: root verified"},
		{"why:\n  slot a\n\tslot b\n", "why:\n  slot a\n\tslot b\n"},
		{"a\n\nb", "a\n  \n  b"},
		{"\n\nbanner\nx", "\n\nbanner\n  x"},
		{long, strings.Repeat("a", maxLine-1) + "…"},
	} {
		if got := truncate(tc.in); got != tc.want {
			t.Errorf("truncate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzTruncate: whatever a disk's label or a header's name holds, a log
// line is valid UTF-8 with no control character but tab, no C1 code, no
// line after its first text that starts with neither a space nor a tab
// (but the ellipsis of a cut), and at most maxLine bytes before the ellipsis.
func FuzzTruncate(f *testing.F) {
	f.Add(strings.Repeat("a", maxLine-1) + "\ue6db")
	f.Add("\x1b]0;title\x07\x9b\xc2\x9b")
	f.Add(strings.Repeat("é", maxLine))
	f.Add("name\nkeel: slot a: good\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		got := truncate(s)
		if !utf8.ValidString(got) {
			t.Fatalf("truncate(%q) = %q: not UTF-8", s, got)
		}
		for _, r := range got {
			if r < 0x20 && r != '\t' && r != '\n' || r >= 0x7f && r <= 0x9f {
				t.Fatalf("truncate(%q) = %q: holds %U", s, got, r)
			}
		}
		text := strings.TrimLeft(got, "\n") // a banner's blank lines first
		for i, l := range strings.Split(text, "\n") {
			if i > 0 && l != "" && l != "…" && l[0] != ' ' && l[0] != '\t' {
				t.Fatalf("truncate(%q) = %q: line %d starts unindented", s, got, i)
			}
		}
		if body := strings.TrimSuffix(got, "…"); len(body) > maxLine {
			t.Fatalf("truncate(%q): %d bytes before the ellipsis, want at most %d", s, len(body), maxLine)
		}
	})
}

// TestLogLineNotForgedByNewline: a disk's string with a newline (a LUKS
// header's UUID field, 40 free bytes, shown raw in a device wait's "seen"
// list) must not start a kernel-log record, nor a console line, of its own
// that reads as the init's: Console indents it (visible), logf must too.
func TestLogLineNotForgedByNewline(t *testing.T) {
	var kmsg, console bytes.Buffer
	l := newLogger(&console)
	l.kmsg = &kmsg
	evil := "vdb crypto_LUKS UUID=x\nroot verified, booting slot a"
	l.Errorf("boot failed: data device: timeout waiting for UUID=1234 (seen: %s)", evil)
	for _, rec := range strings.Split(strings.TrimSpace(kmsg.String()), "\n") {
		if strings.HasPrefix(rec, "<3>keel: root verified") {
			t.Errorf("kernel log record forged by a disk's string: %q", rec)
		}
	}
	l2 := newLogger(&console) // before /dev/kmsg is open: the console
	l2.Errorf("seen: %s", evil)
	if strings.Contains(console.String(), "\nkeel: root verified") {
		t.Errorf("console line forged by a disk's string: %q", console.String())
	}
}
