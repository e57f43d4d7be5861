// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// errExited is returned by an expectation that the guest can no longer meet.
var errExited = errors.New("QEMU exited")

// console keeps everything the guest printed (carriage returns removed), a
// cursor past the last match, and wakes up waiters on every new byte.
type console struct {
	mu      sync.Mutex
	buf     []byte
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
	c.buf = append(c.buf, clean...)
	c.logLines(false)
	c.notify()
	return len(p), nil
}

// close marks the end of output: waiters give up.
func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
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
	c.buf, c.logged = c.buf[:0], 0
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
