// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultTries is how many passphrases Prompt asks for by default.
const DefaultTries = 3

// ErrTimeout is wrapped by the error of a prompt nobody answered within
// its timeout.
var ErrTimeout = errors.New("no passphrase typed in time")

// Prompter asks for a passphrase on a console.
type Prompter struct {
	Console io.ReadWriter
	// Fd is the console's terminal: echo is turned off on it, and it is
	// polled for input when Timeout is set. -1 is none.
	Fd    int
	Tries int // 0 means DefaultTries
	// Timeout bounds the whole prompt, every try included; 0 waits forever.
	Timeout time.Duration
	// Wait waits until Fd has input or d has passed and reports whether it
	// has input; nil is poll(2). Tests replace it, and Now (nil: time.Now).
	Wait func(fd int, d time.Duration) (bool, error)
	Now  func() time.Time
}

// Prompt asks for the passphrase of the volume described by what with a
// Prompter on console and fd without a timeout; see Prompter.Ask.
func Prompt(console io.ReadWriter, fd int, what string, tries int, tryKey func([]byte) error) error {
	return Prompter{Console: console, Fd: fd, Tries: tries}.Ask(what, tryKey)
}

// Ask asks for the passphrase of the volume described by what (see
// Describe), with echo turned off on the terminal, and passes each line
// typed to tryKey. It tries up to p.Tries times while tryKey reports
// ErrNoKeySlot, printing that error after each miss; any other error from
// tryKey ends it at once. The terminal settings are restored before it
// returns. A console that closes is an error, not a hang; a console nobody
// types on waits up to p.Timeout (an ErrTimeout error), forever when it is
// 0, as cryptsetup does.
func (p Prompter) Ask(what string, tryKey func([]byte) error) error {
	tries := p.Tries
	if tries <= 0 {
		tries = DefaultTries
	}
	now := p.Now
	if now == nil {
		now = time.Now
	}
	deadline := now().Add(p.Timeout)
	restore, err := echoOff(p.Fd)
	if err != nil {
		return fmt.Errorf("%s: turning off echo on the console: %w", what, err)
	}
	defer restore()
	console := p.Console
	in := newLineReader(console)
	defer in.wipe()
	var last error
	for range tries {
		fmt.Fprintf(console, "Passphrase for %s: ", what)
		if p.Timeout > 0 {
			if err := p.waitInput(deadline.Sub(now()), in.buffered()); err != nil {
				fmt.Fprint(console, "\n")
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		line, err := in.readLine()
		fmt.Fprint(console, "\n") // the Enter typed was not echoed
		if err != nil {
			return fmt.Errorf("%s: reading the passphrase from the console: %w", what, err)
		}
		err = tryKey(line)
		clear(line)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrNoKeySlot) {
			return err
		}
		fmt.Fprintf(console, "%v\n", err)
		last = err
	}
	return fmt.Errorf("%w (%d tries)", last, tries)
}

// waitInput waits up to left for a line on the console, unless some is
// buffered already.
func (p Prompter) waitInput(left time.Duration, buffered bool) error {
	timedOut := fmt.Errorf("%w: waited %v", ErrTimeout, p.Timeout)
	switch {
	case left <= 0:
		return timedOut
	case buffered:
		return nil
	}
	wait := p.Wait
	if wait == nil {
		if p.Fd < 0 {
			return fmt.Errorf("a passphrase timeout needs the console's file descriptor")
		}
		wait = PollInput
	}
	ok, err := wait(p.Fd, left)
	if err != nil {
		return fmt.Errorf("waiting for the passphrase: %w", err)
	}
	if !ok {
		return timedOut
	}
	return nil
}

// PollInput waits with poll(2) until fd is readable (a terminal in
// canonical mode is once a whole line is typed) or d has passed; a signal
// only shortens the wait by what has passed.
func PollInput(fd int, d time.Duration) (bool, error) {
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 {
			return false, nil
		}
		ms := int(min(left, time.Hour).Milliseconds()) + 1
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		if n > 0 {
			return true, nil
		}
	}
}

// maxLine is the longest line the prompt reads: a terminal's line is at
// most 4095 bytes in canonical mode.
const maxLine = 8 << 10

// lineReader reads lines into the one buffer it owns, which wipe clears
// once the prompt is done: a bufio.Reader's buffer, out of reach, kept
// every passphrase typed after the copy handed out was cleared (found by a
// hunting helper).
type lineReader struct {
	r          io.Reader
	buf        []byte // buf[start:end] is read and not handed out yet
	start, end int
	err        error // the reader's, once it returned one
	empty      int   // reads in a row that returned nothing
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: r, buf: make([]byte, maxLine)} }

// buffered tells whether some input was read and not handed out yet.
func (l *lineReader) buffered() bool { return l.end > l.start }

// readLine reads one line without its line ending; the line is the
// reader's buffer, which the caller clears when done with it. A console
// that ends before a line does is io.ErrUnexpectedEOF (or io.EOF with
// nothing typed).
func (l *lineReader) readLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.start:l.end], '\n'); i >= 0 {
			line := l.buf[l.start : l.start+i]
			l.start += i + 1
			return bytes.TrimRight(line, "\r"), nil
		}
		if l.err != nil {
			if errors.Is(l.err, io.EOF) && l.buffered() {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, l.err
		}
		if l.start > 0 { // move what is left to the front
			n := copy(l.buf, l.buf[l.start:l.end])
			clear(l.buf[n:l.end])
			l.start, l.end = 0, n
		}
		if l.end == len(l.buf) {
			return nil, fmt.Errorf("a line of more than %d bytes", len(l.buf))
		}
		n, err := l.r.Read(l.buf[l.end:])
		l.end += n
		l.err = err
		if n == 0 && err == nil {
			if l.empty++; l.empty == 100 { // as bufio gives up
				l.err = io.ErrNoProgress
			}
		} else {
			l.empty = 0
		}
	}
}

// wipe clears everything read.
func (l *lineReader) wipe() {
	clear(l.buf)
	l.start, l.end = 0, 0
}

// echoOff turns off echo on the terminal fd, keeping canonical mode so the
// kernel does the line editing (backspace, ^U) with Enter alone ending a
// line, and returns the function
// that restores the settings. A console that is not a terminal (fd < 0,
// or a pipe in tests) echoes nothing anyway.
func echoOff(fd int) (restore func(), err error) {
	if fd < 0 {
		return func() {}, nil
	}
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	t := *old
	t.Lflag &^= unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL
	t.Lflag |= unix.ICANON
	// Only Enter ends a line. ^D (VEOF) would hand the partial line to
	// the reader, which then waits for its newline past the timeout: a
	// locked machine's prompt stopped for good by a key press, or by a
	// 0x04 in a serial line's noise. VEOL and VEOL2 likewise.
	for _, c := range []int{unix.VEOF, unix.VEOL, unix.VEOL2} {
		t.Cc[c] = 0 // _POSIX_VDISABLE
	}
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
