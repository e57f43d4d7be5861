// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bufio"
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
	in := bufio.NewReader(console)
	var last error
	for range tries {
		fmt.Fprintf(console, "Passphrase for %s: ", what)
		if p.Timeout > 0 {
			if err := p.waitInput(deadline.Sub(now()), in.Buffered() > 0); err != nil {
				fmt.Fprint(console, "\n")
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		line, err := readLine(in)
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

// readLine reads one line without its line ending. A console that ends
// before a line does is io.ErrUnexpectedEOF (or io.EOF with nothing typed).
func readLine(in *bufio.Reader) ([]byte, error) {
	s, err := in.ReadBytes('\n')
	if errors.Is(err, io.EOF) && len(s) > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		clear(s)
		return nil, err
	}
	return bytes.TrimRight(s, "\r\n"), nil
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
