// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// errExited is returned by an expectation that the guest can no longer meet.
var errExited = errors.New("QEMU exited")

// console keeps everything the guest printed (carriage returns removed), a
// cursor past the last match, and wakes up waiters on every new byte.
//
// The kernel prints its messages to the serial port between any two chunks
// of a program's output, so a line a program wrote with one write can reach
// the console cut in two by a kernel line ("...}[   28.855742] hrtimer:
// interrupt took 9363800 ns\n\n"). The console moves such a kernel line to
// its own line, before the program's line it cut (see add): both stay whole,
// and an expectation of either matches as the guest meant it. What is taken
// for a kernel line is the kernel's prefix ("[" seconds "." six digits "] ")
// inside a line: a program must not print one there itself (an echo of
// dmesg), or its line is split at it. A kernel built with
// CONFIG_PRINTK_CALLER ("[    1.000000][    T1] ") is not recognised, and
// its lines stay where they cut (Debian's kernel prints no caller).
type console struct {
	mu      sync.Mutex
	buf     []byte
	held    []byte        // the start of what may be a kernel line inside a program's line
	pos     int           // expectations search buf[pos:]
	changed chan struct{} // closed and replaced on every change
	closed  bool          // no more output will come

	log    io.Writer // timestamped complete lines; write errors are ignored
	start  time.Time
	logged int // buf[:logged] has been written to log
}

func newConsole(log io.Writer, start time.Time) *console {
	return &console{changed: make(chan struct{}), log: log, start: start}
}

// Write appends guest output; it implements io.Writer for the reader loop.
func (c *console) Write(p []byte) (int, error) {
	clean := bytes.ReplaceAll(p, []byte("\r"), nil)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.add(clean)
	c.logLines(false)
	c.notify()
	return len(p), nil
}

// add appends output to buf, moving a kernel line that arrives inside a
// program's line (the buffer does not end in a newline) to the start of
// that line, or just past the cursor if an expectation already matched in
// it. Bytes that may start such a kernel line are held until they are known
// to be one (held until its newline) or not (appended at once); the caller
// holds mu.
func (c *console) add(p []byte) {
	data := append(c.held, p...)
	c.held = nil
	for len(data) > 0 {
		n := bytes.IndexAny(data, "[\n")
		switch {
		case n < 0:
			c.buf, data = append(c.buf, data...), nil
			continue
		case data[n] == '\n':
			c.buf, data = append(c.buf, data[:n+1]...), data[n+1:]
			continue
		}
		c.buf, data = append(c.buf, data[:n]...), data[n:]
		if len(c.buf) == 0 || c.buf[len(c.buf)-1] == '\n' {
			// At a line's start a kernel line is where it belongs.
			c.buf, data = append(c.buf, '['), data[1:]
			continue
		}
		switch m := kernelPrefix(data); {
		case m < 0:
			c.buf, data = append(c.buf, '['), data[1:]
		case m == 0:
			c.held = bytes.Clone(data)
			return
		default:
			end := bytes.IndexByte(data, '\n') + 1
			if end > maxKernelLine || end == 0 && len(data) > maxKernelLine {
				// Longer than the kernel prints: not one of its lines.
				c.buf, data = append(c.buf, '['), data[1:]
				continue
			}
			if end == 0 {
				c.held = bytes.Clone(data)
				return
			}
			c.insertLine(data[:end])
			data = data[end:]
		}
	}
}

// maxKernelLine bounds a kernel console line (LOG_LINE_MAX, 1024 bytes less
// the record header, and the prefix): bytes held longer are not one.
const maxKernelLine = 1100

// insertLine puts a whole line before the unfinished last line of buf, or
// at the cursor if that is further on (what expectations already passed
// stays passed). buf is copied, not shifted in place: expect's callers may
// still hold slices of it.
func (c *console) insertLine(line []byte) {
	at := max(bytes.LastIndexByte(c.buf, '\n')+1, c.pos)
	c.buf = slices.Concat(c.buf[:at], line, c.buf[at:])
}

// kernelPrefix reports whether b starts with the prefix the kernel gives
// each console line, "[" spaces, seconds "." six digits "] " (printk.time):
// its length if it does, 0 if b may still become one, -1 if it cannot.
func kernelPrefix(b []byte) int {
	i := 1                                    // b[0] is '['
	for i < len(b) && i <= 4 && b[i] == ' ' { // "%5lu": 4 spaces at most
		i++
	}
	digits := func(min, max int) (ok, more bool) {
		n := 0
		for i < len(b) && n < max && b[i] >= '0' && b[i] <= '9' {
			i, n = i+1, n+1
		}
		return n >= min, i == len(b)
	}
	ok, more := digits(1, 12)
	switch {
	case more:
		return 0
	case !ok || b[i] != '.':
		return -1
	}
	i++
	ok, more = digits(6, 6)
	switch {
	case more:
		return 0
	case !ok || b[i] != ']':
		return -1
	case i+1 == len(b):
		return 0
	case b[i+1] != ' ':
		return -1
	}
	return i + 2
}

// close marks the end of output: waiters give up.
func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf, c.held = append(c.buf, c.held...), nil
	c.logLines(true)
	c.closed = true
	c.notify()
}

// restart empties the console for a new run of the same boot, if nothing
// of this one was relied on: no expectation matched and the guest's init
// never started (initStarted). The log keeps what was printed, then note.
func (c *console) restart(note string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pos != 0 || bytes.Contains(c.buf, []byte(initStarted)) {
		return false
	}
	c.logLines(true)
	c.buf = append(c.buf[:0], note+"\n"...)
	c.logged = 0
	c.logLines(true)
	c.buf, c.logged, c.held = c.buf[:0], 0, nil
	c.notify()
	return true
}

// lockupMarks are how the kernel reports a CPU that no longer makes
// progress (the soft-lockup watchdog, RCU's stall detector), and the early
// check of the timer through the IO-APIC, which under TCG on a loaded host
// sometimes fails at 0.01 s with a panic ("IO-APIC + timer doesn't work!"),
// before the kernel has read a disk.
var lockupMarks = []string{"BUG: soft lockup", "detected stalls on CPUs", "self-detected stall on CPU", "IO-APIC + timer doesn't work"}

// earlyLockup reports the console line of a kernel lockup when the guest
// has not run its init ("" for none, or once it has), whether it has, and
// the channel closed at the next output.
func (c *console) earlyLockup() (changed <-chan struct{}, lockup string, initRan bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bytes.Contains(c.buf, []byte(initStarted)) {
		return c.changed, "", true
	}
	for _, m := range lockupMarks {
		if i := bytes.Index(c.buf, []byte(m)); i >= 0 {
			return c.changed, lineAround(c.buf, i, i+len(m)), false
		}
	}
	return c.changed, "", false
}

// kernelBanner is the kernel's first console line, shown unless the
// command line says quiet: only then is a silent console before /init a
// stall rather than the quiet kernel at work.
const kernelBanner = "Linux version "

// silentKernel reports, when the guest has not run its init, the kernel
// printed its banner (not quiet) and nothing came since the last change,
// the last line it printed ("" otherwise).
func (c *console) silentKernel() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bytes.Contains(c.buf, []byte(initStarted)) || !bytes.Contains(c.buf, []byte(kernelBanner)) {
		return ""
	}
	b := bytes.TrimRight(c.buf, "\n")
	return string(b[bytes.LastIndexByte(b, '\n')+1:])
}

// notify wakes every waiter; the caller holds mu.
func (c *console) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// logLines writes the complete lines not yet logged (all of them at the end),
// each prefixed with the seconds since QEMU started.
func (c *console) logLines(all bool) {
	if c.log == nil {
		return
	}
	for c.logged < len(c.buf) {
		rest := c.buf[c.logged:]
		n := bytes.IndexByte(rest, '\n')
		if n < 0 && !all {
			return
		}
		if n < 0 {
			n = len(rest)
		}
		ts := time.Since(c.start).Seconds()
		_, _ = fmt.Fprintf(c.log, "[%8.3f] %s\n", ts, rest[:n]) // the log is a convenience; the buffer is the truth
		c.logged += min(n+1, len(rest))
	}
}

// matcher finds a match in b: the index of its start and end, or ok false.
type matcher func(b []byte) (start, end int, ok bool)

// substring matches s anywhere, even in a line not yet ended (a prompt).
func substring(s string) matcher {
	return func(b []byte) (int, int, bool) {
		i := bytes.Index(b, []byte(s))
		return i, i + len(s), i >= 0
	}
}

// completeLines matches re (multi-line mode: ^ and $ are line ends) only in
// lines already ended, so `(.*)$` never captures half a line.
func completeLines(re *regexp.Regexp) matcher {
	return func(b []byte) (int, int, bool) {
		end := bytes.LastIndexByte(b, '\n')
		if end < 0 {
			return 0, 0, false
		}
		loc := re.FindIndex(b[:end+1])
		if loc == nil {
			return 0, 0, false
		}
		return loc[0], loc[1], true
	}
}

// expect waits until m matches after the cursor, moves the cursor past the
// match and returns buf[pos:] at the time with the match's offsets in it.
func (c *console) expect(m matcher, timeout time.Duration) (text []byte, start, end int, err error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		b := c.buf[c.pos:]
		s, e, ok := m(b)
		if ok {
			c.pos += e
		}
		closed, changed := c.closed, c.changed
		c.mu.Unlock()
		switch {
		case ok:
			return b, s, e, nil
		case closed:
			return nil, 0, 0, errExited
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, 0, 0, fmt.Errorf("no match within %v", timeout)
		}
	}
}

// String returns everything printed so far.
func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

// tail returns the last n lines printed so far.
func (c *console) tail(n int) []string {
	lines := strings.Split(strings.TrimSuffix(c.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// lineAround returns the whole line of b holding b[start:end].
func lineAround(b []byte, start, end int) string {
	from := bytes.LastIndexByte(b[:start], '\n') + 1
	to := bytes.IndexByte(b[end:], '\n')
	if to < 0 {
		return string(b[from:])
	}
	return string(b[from : end+to])
}
