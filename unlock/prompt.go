package unlock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// DefaultTries is how many passphrases Prompt asks for by default.
const DefaultTries = 3

// Prompt asks for the passphrase of the volume described by what (see
// Describe) on console, with echo turned off on the terminal fd, and
// passes each line typed to tryKey. It tries up to tries times while
// tryKey reports ErrNoKeySlot, printing that error after each miss; any
// other error from tryKey ends it at once. The terminal settings are
// restored before it returns. A console that closes is an error, not a
// hang; a console nobody types on waits, as cryptsetup does.
func Prompt(console io.ReadWriter, fd int, what string, tries int, tryKey func([]byte) error) error {
	restore, err := echoOff(fd)
	if err != nil {
		return fmt.Errorf("%s: turning off echo on the console: %w", what, err)
	}
	defer restore()
	in := bufio.NewReader(console)
	var last error
	for range max(tries, 1) {
		fmt.Fprintf(console, "Passphrase for %s: ", what)
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
	return fmt.Errorf("%w (%d tries)", last, max(tries, 1))
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
// kernel does the line editing (backspace, ^U), and returns the function
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
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &t); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
