// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sys/unix"
)

// console reads from in and records what is written.
type console struct {
	in  io.Reader
	out bytes.Buffer
}

func (c *console) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *console) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *console) String() string              { return c.out.String() }

const what = "data (LUKS2 /dev/vda6)"

// tryer accepts "right" and reports the others as ErrNoKeySlot.
func tryer(tried *[]string) func([]byte) error {
	return func(p []byte) error {
		*tried = append(*tried, string(p))
		if string(p) == "right" {
			return nil
		}
		return fmt.Errorf("%s: %w the passphrase", what, ErrNoKeySlot)
	}
}

func TestPrompt(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		tried       []string
		err         string
		prompts     int
	}{
		{name: "first try", input: "right\n", tried: []string{"right"}, prompts: 1},
		{name: "third try, CRLF", input: "a\r\n\nright\r\n", tried: []string{"a", "", "right"}, prompts: 3},
		{name: "out of tries", input: "a\nb\nc\nright\n", tried: []string{"a", "b", "c"}, prompts: 3,
			err: "data (LUKS2 /dev/vda6): no key slot matches the passphrase (3 tries)"},
		{name: "console closed", input: "a\n", tried: []string{"a"}, prompts: 2,
			err: "data (LUKS2 /dev/vda6): reading the passphrase from the console: EOF"},
		{name: "no newline", input: "righ", prompts: 1, err: "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &console{in: strings.NewReader(tc.input)}
			var tried []string
			err := Prompt(c, -1, what, 3, tryer(&tried))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Error(err)
			}
			if strings.Join(tried, "|") != strings.Join(tc.tried, "|") {
				t.Errorf("tried %q, want %q", tried, tc.tried)
			}
			if n := strings.Count(c.String(), "Passphrase for "+what+": "); n != tc.prompts {
				t.Errorf("%d prompts, want %d:\n%s", n, tc.prompts, c.String())
			}
			if strings.Contains(c.String(), "right") {
				t.Errorf("passphrase written to the console:\n%s", c.String())
			}
		})
	}
}

func TestPromptStopsOnOtherErrors(t *testing.T) {
	c := &console{in: strings.NewReader("a\nb\n")}
	calls := 0
	boom := errors.New("dm-crypt: no such device")
	err := Prompt(c, -1, what, 3, func([]byte) error { calls++; return boom })
	if !errors.Is(err, boom) || calls != 1 {
		t.Errorf("err = %v after %d calls, want the mapping error after 1", err, calls)
	}
}

func TestPromptOnPipe(t *testing.T) {
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	go func() { fmt.Fprint(w, "right\n"); w.Close() }()
	c := &console{in: r}
	var tried []string
	// A pipe is not a terminal: there is no echo to turn off, and no error.
	if err := Prompt(c, int(r.Fd()), what, 3, tryer(&tried)); err != nil {
		t.Fatal(err)
	}
}

// openPTY opens a pseudo-terminal pair through /dev/ptmx.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	must(t, err)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("opening the pty slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// readUntil reads from the master until want appears. A prompt that never
// writes it hangs the test, and go test's -timeout reports where: no
// deadline of this test can fail a slow but correct Prompt.
func readUntil(t *testing.T, m *os.File, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	for !bytes.Contains(got, []byte(want)) {
		n, err := m.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q, got %q: %v", want, got, err)
		}
		got = append(got, buf[:n]...)
	}
	return string(got)
}

func TestPromptOnTerminal(t *testing.T) {
	m, s := openPTY(t)
	fd := int(s.Fd())
	before, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	must(t, err)
	if before.Lflag&unix.ECHO == 0 {
		t.Fatal("a fresh pty should echo")
	}
	done := make(chan error, 1)
	var tried []string
	go func() { done <- Prompt(s, fd, what, 3, tryer(&tried)) }()

	out := readUntil(t, m, "Passphrase for "+what+": ")
	during, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	must(t, err)
	if during.Lflag&unix.ECHO != 0 || during.Lflag&unix.ICANON == 0 {
		t.Errorf("while prompting lflag %#x: want ECHO off, ICANON on", during.Lflag)
	}
	// Type a wrong passphrase with a typo erased by backspace, then the right one.
	_, err = m.Write([]byte("wronk\x7fg\n"))
	must(t, err)
	out += readUntil(t, m, "Passphrase for "+what+": ")
	_, err = m.Write([]byte("right\n"))
	must(t, err)
	must(t, <-done)
	if strings.Join(tried, "|") != "wrong|right" {
		t.Errorf("tried %q, want the line-edited wrong then right", tried)
	}
	if strings.Contains(out, "wron") || strings.Contains(out, "right") {
		t.Errorf("passphrase echoed:\n%q", out)
	}
	if !strings.Contains(out, "no key slot matches the passphrase") {
		t.Errorf("no miss message:\n%q", out)
	}
	after, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	must(t, err)
	if *after != *before {
		t.Errorf("terminal not restored: lflag %#x, was %#x", after.Lflag, before.Lflag)
	}
}

// TestPromptEOFCharKeepsTheTimeout: on a terminal, ^D after a partial
// passphrase (typed, or a 0x04 in a serial line's noise) ends no line: the
// timeout still ends the prompt. ^D used to hand "abc" to the reader,
// which then waited for its newline for ever, the timeout past. A ^D
// inside a passphrase ended by Enter is part of it.
func TestPromptEOFCharKeepsTheTimeout(t *testing.T) {
	m, s := openPTY(t)
	fd := int(s.Fd())
	before, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	must(t, err)
	done := make(chan error, 1)
	var tried []string
	p := Prompter{Console: s, Fd: fd, Tries: 3, Timeout: 2 * time.Second}
	go func() { done <- p.Ask(what, tryer(&tried)) }()
	readUntil(t, m, "Passphrase for "+what+": ")
	during, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	must(t, err)
	if during.Cc[unix.VEOF] != 0 || before.Cc[unix.VEOF] == 0 {
		t.Errorf("VEOF %#x while prompting, %#x before: want it disabled while prompting only", during.Cc[unix.VEOF], before.Cc[unix.VEOF])
	}
	_, err = m.Write([]byte("abc\x04"))
	must(t, err)
	select {
	case err := <-done:
		if !errors.Is(err, ErrTimeout) || len(tried) != 0 {
			t.Errorf("err = %v, tried %q: want the timeout, nothing tried", err, tried)
		}
	case <-time.After(time.Minute): // a hang detector, not a timing check
		t.Fatal("the prompt still waits a minute after its 2 s timeout: ^D handed it a line without its end")
	}
	after, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	must(t, err)
	if *after != *before {
		t.Errorf("terminal not restored after the timeout: VEOF %#x, was %#x", after.Cc[unix.VEOF], before.Cc[unix.VEOF])
	}

	must(t, unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)) // "abc^D", never a line

	tried = nil
	p.Timeout, p.Tries = 0, 1
	go func() { done <- p.Ask(what, tryer(&tried)) }()
	readUntil(t, m, "Passphrase for "+what+": ")
	_, err = m.Write([]byte("ri\x04ght\n"))
	must(t, err)
	if err := <-done; !errors.Is(err, ErrNoKeySlot) || len(tried) != 1 || tried[0] != "ri\x04ght" {
		t.Errorf("err = %v, tried %q: want the whole line, ^D in it, tried once", err, tried)
	}
}

// TestPromptTimeout: with a timeout, the prompt waits for input through
// Wait and gives up with ErrTimeout when nothing comes, without trying a
// key; the timeout covers every try (the clock is injected: no waiting).
func TestPromptTimeout(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("nothing typed", func(t *testing.T) {
		c := &console{in: strings.NewReader("right\n")}
		var waited []time.Duration
		p := Prompter{Console: c, Fd: -1, Tries: 3, Timeout: 2 * time.Minute,
			Now:  func() time.Time { return start },
			Wait: func(fd int, d time.Duration) (bool, error) { waited = append(waited, d); return false, nil }}
		var tried []string
		err := p.Ask(what, tryer(&tried))
		if !errors.Is(err, ErrTimeout) || len(tried) != 0 {
			t.Errorf("err = %v, tried %v; want ErrTimeout and no key tried", err, tried)
		}
		if want := "data (LUKS2 /dev/vda6): no passphrase typed in time: waited 2m0s"; err == nil || err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
		if len(waited) != 1 || waited[0] != 2*time.Minute {
			t.Errorf("waited %v, want once for the whole timeout", waited)
		}
	})
	t.Run("the deadline passes between tries", func(t *testing.T) {
		c := &console{in: strings.NewReader("a\nright\n")}
		now := start
		p := Prompter{Console: c, Fd: -1, Tries: 3, Timeout: time.Minute,
			Now:  func() time.Time { return now },
			Wait: func(int, time.Duration) (bool, error) { return true, nil }}
		var tried []string
		err := p.Ask(what, func(b []byte) error {
			now = now.Add(time.Minute) // the first try took the whole minute
			return tryer(&tried)(b)
		})
		if !errors.Is(err, ErrTimeout) || len(tried) != 1 {
			t.Errorf("err = %v, tried %v; want ErrTimeout after one try", err, tried)
		}
	})
	t.Run("typed in time", func(t *testing.T) {
		c := &console{in: strings.NewReader("a\nright\n")}
		waits := 0
		p := Prompter{Console: c, Fd: -1, Timeout: time.Minute,
			Now:  func() time.Time { return start },
			Wait: func(int, time.Duration) (bool, error) { waits++; return true, nil }}
		var tried []string
		if err := p.Ask(what, tryer(&tried)); err != nil || len(tried) != 2 {
			t.Errorf("err = %v, tried %v", err, tried)
		}
		if waits == 0 {
			t.Error("Wait never called with a timeout set")
		}
	})
	t.Run("no timeout never waits", func(t *testing.T) {
		c := &console{in: strings.NewReader("right\n")}
		p := Prompter{Console: c, Fd: -1,
			Wait: func(int, time.Duration) (bool, error) { t.Error("Wait called without a timeout"); return false, nil }}
		var tried []string
		if err := p.Ask(what, tryer(&tried)); err != nil {
			t.Error(err)
		}
	})
	t.Run("wait error", func(t *testing.T) {
		p := Prompter{Console: &console{in: strings.NewReader("")}, Fd: -1, Timeout: time.Minute,
			Wait: func(int, time.Duration) (bool, error) { return false, unix.EBADF }}
		if err := p.Ask(what, tryer(new([]string))); !errors.Is(err, unix.EBADF) {
			t.Errorf("err = %v, want EBADF", err)
		}
	})
}

// TestPollInput runs the real poll(2) over a pipe: a line written is
// input; an empty pipe is not (a 1 ms wait, no assertion on time).
func TestPollInput(t *testing.T) {
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	defer w.Close()
	if ok, err := PollInput(int(r.Fd()), time.Millisecond); ok || err != nil {
		t.Errorf("empty pipe: %v, %v; want no input", ok, err)
	}
	p := Prompter{Console: &rw{r, io.Discard}, Fd: int(r.Fd()), Timeout: time.Millisecond}
	if err := p.Ask(what, tryer(new([]string))); !errors.Is(err, ErrTimeout) {
		t.Errorf("nothing typed: err = %v, want ErrTimeout", err)
	}
	_, err = w.Write([]byte("right\n"))
	must(t, err)
	p.Timeout = time.Hour
	var tried []string
	if err := p.Ask(what, tryer(&tried)); err != nil || len(tried) != 1 {
		t.Errorf("typed: err = %v, tried %v", err, tried)
	}
}

type rw struct {
	io.Reader
	io.Writer
}

// keeper is a console that keeps every buffer the prompt reads into.
type keeper struct {
	console
	bufs [][]byte
}

func (k *keeper) Read(p []byte) (int, error) {
	k.bufs = append(k.bufs, p)
	return k.console.Read(p)
}

// TestPromptWipesWhatItRead: once the prompt is done, no buffer it read
// the console into holds a passphrase typed, the right one or the wrong
// ones; a bufio.Reader's buffer kept them (found by a hunting helper).
// Lines are read whole whatever the reads return, up to a limit.
func TestPromptWipesWhatItRead(t *testing.T) {
	for _, in := range []io.Reader{
		// Read at once: what follows the right passphrase was read too.
		strings.NewReader("correct horse\r\nright\nbattery staple\n"),
		iotest.OneByteReader(strings.NewReader("correct horse\r\nright\n")),
	} {
		c := &keeper{console: console{in: in}}
		var tried []string
		if err := Prompt(c, -1, what, 3, tryer(&tried)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tried, []string{"correct horse", "right"}) {
			t.Errorf("tried %q", tried)
		}
		for _, b := range c.bufs {
			for _, secret := range []string{"horse", "right", "staple"} {
				if bytes.Contains(b[:cap(b)], []byte(secret)) {
					t.Fatalf("a buffer the console was read into still holds %q", secret)
				}
			}
		}
	}
	var tried []string
	long := &console{in: strings.NewReader(strings.Repeat("x", maxLine+1) + "\n")}
	if err := Prompt(long, -1, what, 3, tryer(&tried)); err == nil || !strings.Contains(err.Error(), "a line of more than 8192 bytes") {
		t.Errorf("a line past the limit: %v", err)
	}
	stuck := &console{in: iotest.ErrReader(nil)}
	if err := Prompt(stuck, -1, what, 3, tryer(&tried)); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("a console whose reads return nothing: %v", err)
	}
}
