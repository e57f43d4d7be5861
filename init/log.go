// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Log levels, as kmsg priorities.
const (
	prioAlert = 1
	prioErr   = 3
	prioWarn  = 4
	prioInfo  = 6
	prioDebug = 7
)

// maxLine keeps kmsg records below the kernel's limit (LOG_LINE_MAX ~ 1 KiB).
const maxLine = 900

// logger writes to /dev/kmsg with a keel: prefix, so journald keeps the
// initramfs log, and falls back to the console until /dev/kmsg is open.
type logger struct {
	mu      sync.Mutex
	kmsg    io.Writer
	console io.Writer
	level   int
	// drain returns once what was written to the console has left it
	// (tcdrain); nil when the console is no file. drainWait bounds
	// Console's wait for it, stallWait the further wait after which the
	// line is repeated in the kernel log (stalled). Tests replace them.
	drain     func() error
	drainWait time.Duration
	stallWait time.Duration
	// consoleFD is the console opened once more, non-blocking (openKmsg),
	// that lines are written through; -1 before, or off a file. putWait
	// bounds put's wait for a console whose buffer is full to take more;
	// stuck says the last wait ran out, so that a console held for good
	// (flow control) costs the boot one such wait, not one per line.
	consoleFD int
	putWait   time.Duration
	stuck     bool
	// printk is the file whose first field is the console log level
	// (/proc/sys/kernel/printk; repeatPrio). Tests replace it.
	printk string
}

func newLogger(console io.Writer) *logger {
	l := &logger{console: console, level: prioInfo, drainWait: consoleDrainLimit, stallWait: consoleStallLimit, consoleFD: -1,
		putWait: consolePutLimit, printk: "/proc/sys/kernel/printk"}
	if f, ok := console.(*os.File); ok {
		l.drain = func() error { return unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1) } // ENOTTY off a terminal
	}
	return l
}

// openKmsg switches logging to /dev/kmsg and lifts the kernel's rate limit on
// userspace kmsg writes (10 lines per 5 s by default, printk_devkmsg=ratelimit),
// which would otherwise drop most of the boot log. It also opens the
// console once more, non-blocking, for the lines written to it (put); /proc
// is mounted by then.
func (l *logger) openKmsg() {
	_ = os.WriteFile("/proc/sys/kernel/printk_devkmsg", []byte("on\n"), 0)
	if c, ok := l.console.(*os.File); ok {
		l.openConsole(fmt.Sprintf("/proc/self/fd/%d", c.Fd()))
	}
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		l.Warnf("cannot open /dev/kmsg, logging to the console: %v", err)
		return
	}
	l.mu.Lock()
	l.kmsg = f
	l.mu.Unlock()
}

// openConsole opens path, the console, once more as a new open file with
// O_NONBLOCK, for put: the console's own descriptors (0, 1, 2, which the
// passphrase prompt reads and the emergency shell inherits) stay
// blocking. When it cannot, lines go through the console writer as before.
func (l *logger) openConsole(path string) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	l.mu.Lock()
	l.consoleFD = fd
	l.mu.Unlock()
}

// put writes s to the console and reports whether all of it was taken.
// Through consoleFD its wait is bounded: a console whose buffer is full
// for a moment (a shell's echo and the kernel's lines ahead of it on a
// slow serial port) gets putWait to take the line, and one that takes no
// more (a port held by flow control, XOFF or CTS) costs the line, not a
// boot stuck in a write with the logger's lock held. Once a wait has run
// out, later lines do not wait until the console takes one again. The
// caller holds mu.
func (l *logger) put(s string) bool {
	if l.consoleFD < 0 {
		_, err := io.WriteString(l.console, s)
		return err == nil
	}
	deadline := time.Now().Add(l.putWait)
	for b := []byte(s); len(b) > 0; {
		n, err := unix.Write(l.consoleFD, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && !l.stuck && l.writable(deadline):
			continue
		case err != nil || n <= 0:
			l.stuck = err == unix.EAGAIN
			return false
		}
		b = b[n:]
	}
	l.stuck = false
	return true
}

// writable waits until the console takes output again or deadline passes,
// and reports whether it does.
func (l *logger) writable(deadline time.Time) bool {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(l.consoleFD), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && fds[0].Revents&unix.POLLOUT != 0
	}
}

// consoleWriter writes to the console as put does, for the passphrase
// prompt: a prompt the console does not take is repeated in the kernel
// log, and the prompt still waits for a passphrase (within
// rd.luks.timeout) instead of waiting on the console for ever, the
// watchdog fed as for someone typing.
type consoleWriter struct{ l *logger }

func (w consoleWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	if !w.l.put(string(p)) {
		if line := strings.TrimSpace(string(p)); line != "" {
			w.l.refused(line)
		}
		return 0, errConsoleFull
	}
	return len(p), nil
}

var errConsoleFull = errors.New("the console takes no more output")

// refused repeats in the kernel log a console line the console did not
// take (put), so that it reaches the console by the kernel's own path,
// which no tty flow control holds. Nothing is written before /dev/kmsg is
// open. The caller holds mu.
func (l *logger) refused(line string) {
	line = strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(line), "keel: "), "\n", " ") // one kmsg record
	l.kmsgLine(l.repeatPrio(), "the console takes no more output (flow control?), so this line is here: "+line)
}

// repeatPrio is the priority of a console line repeated in the kernel log
// (refused, stalled): one the kernel prints on the console, below its
// console log level, which `quiet` sets to 4 and `loglevel=N` to N (at
// KERN_ERR, a `loglevel=3` boot kept the line from every console). It is
// KERN_ERR when the console shows that, never above it, and never below
// KERN_ALERT: KERN_EMERG is for a machine that is unusable, and a console
// set to show only that (`loglevel=1`) was asked for nothing else. The
// level is read when a line is repeated, on that fault's path only.
func (l *logger) repeatPrio() int {
	b, err := os.ReadFile(l.printk)
	level, ok := consoleLevel(string(b))
	if err != nil || !ok {
		return prioErr
	}
	return min(max(level-1, prioAlert), prioErr)
}

func (l *logger) setLevel(prio int) {
	l.mu.Lock()
	l.level = prio
	l.mu.Unlock()
}

func (l *logger) logf(prio int, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prio > l.level {
		return
	}
	// Made visible whole before it is cut into records: a newline from a
	// disk's string (a LUKS header's UUID in a failed wait's "seen" list)
	// then starts an indented line, not a "keel: …" record of its own
	// (found by a hunting helper).
	msg := visible(fmt.Sprintf(format, args...))
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		if !l.kmsgLine(prio, line) {
			l.put("keel: " + truncate(line) + "\n")
		}
	}
}

// kmsgLine writes line to /dev/kmsg as one record at prio, and reports
// whether it could (false before openKmsg). The caller holds mu.
func (l *logger) kmsgLine(prio int, line string) bool {
	if l.kmsg == nil {
		return false
	}
	_, err := fmt.Fprintf(l.kmsg, "<%d>keel: %s\n", prio, truncate(line))
	return err == nil
}

// truncate makes line visible and cuts it at maxLine bytes, on a
// character's boundary: a cut inside one would leave the start of a UTF-8
// sequence, whose bytes (0x9b of U+E6DB) a terminal in 8-bit mode takes for
// a control sequence (found by a helper's audit).
func truncate(line string) string {
	line = visible(line)
	if len(line) > maxLine {
		cut := maxLine
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		return line[:cut] + "…"
	}
	return line
}

// visible writes the control characters of s but tab and newline as \xNN:
// messages quote what disks hold (a LUKS2 header's names, partition
// labels), and an escape sequence from a stick must not clear the console,
// move its cursor or make the terminal answer as if typed. A line after a
// newline that does not start with a space or a tab is indented by two
// spaces, as the init's own continuation lines are (newlines before the
// message's first text are left alone): a newline in a disk's
// string (a GPT partition name, a reason in the boot state) must not start
// a line of its own that reads as the init's ("keel: root verified").
//
// A byte that is not UTF-8 is written out too: a raw 0x9b is an 8-bit CSI
// to a terminal in that mode.
func visible(s string) string {
	ctl := func(r rune, size int) bool {
		return r < 0x20 && r != '\t' && r != '\n' || r >= 0x7f && r <= 0x9f || r == utf8.RuneError && size == 1
	}
	// unindented reports a newline at i, after the message's first text,
	// followed by a line that starts with neither a space nor a tab (the
	// blank lines a banner starts with are the init's own).
	lead := len(s) - len(strings.TrimLeft(s, "\n"))
	unindented := func(i int) bool {
		return i >= lead && s[i] == '\n' && i+1 < len(s) && s[i+1] != ' ' && s[i+1] != '\t'
	}
	clean := true
	for i := 0; i < len(s) && clean; {
		r, size := utf8.DecodeRuneInString(s[i:])
		clean = !ctl(r, size) && !unindented(i)
		i += size
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case ctl(r, size):
			fmt.Fprintf(&b, "\\x%02x", r)
		case unindented(i):
			b.WriteString("\n  ")
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func (l *logger) Errorf(format string, args ...any) { l.logf(prioErr, format, args...) }
func (l *logger) Warnf(format string, args ...any)  { l.logf(prioWarn, format, args...) }
func (l *logger) Infof(format string, args ...any)  { l.logf(prioInfo, format, args...) }
func (l *logger) Debugf(format string, args ...any) { l.logf(prioDebug, format, args...) }

// Console writes straight to the console, whatever the log level: what an
// operator must see (the emergency banner) does not depend on quiet.
//
// On a terminal it returns once the line is out (tcdrain): a serial
// console's tty drains its buffer by interrupts, while the kernel prints a
// kmsg line synchronously, so a log line written right after could
// otherwise land in the middle of this one. The wait is bounded: a line
// that cannot drain (a serial port held by flow control) must not stop the
// boot. One still not out after stallWait more is repeated in the kernel
// log (stalled).
func (l *logger) Console(format string, args ...any) {
	line := visible(fmt.Sprintf(format, args...))
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.put(line + "\n") {
		l.refused(line)
		return
	}
	if l.drain == nil {
		return
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		defer swallowPanic() // PID 1: a panic here would be the kernel's
		_ = l.drain()
	}()
	select {
	case <-drained:
	case <-time.After(l.drainWait):
		go func() {
			defer swallowPanic()
			l.stalled(line, drained)
		}()
	}
}

// swallowPanic ends a panic of the logger's own goroutines: a log line
// lost is better than PID 1's death, which is a kernel panic, and the
// logger has no one else to tell.
func swallowPanic() { _ = recover() }

// stalled repeats in the kernel log a console line that has still not left
// the console stallWait after Console stopped waiting for it, so that what
// an operator must see reaches the console by the kernel's own path, and
// the journal says the console stalled. On a serial console the kernel's
// write also restarts a transmitter waiting for an interrupt that never
// came: it masks the port's interrupts while it prints and unmasks them
// after, which raises the transmitter-empty interrupt again (QEMU's 16550
// raises it whenever the interrupt is unmasked with the transmitter
// empty). Nothing is written to the console itself, whose buffer may be
// full, nor before /dev/kmsg is open.
func (l *logger) stalled(line string, drained <-chan struct{}) {
	t := time.NewTimer(l.stallWait)
	defer t.Stop()
	select {
	case <-drained:
		return
	case <-t.C:
	}
	line = strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(line), "keel: "), "\n", " ") // one kmsg record
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kmsgLine(l.repeatPrio(), fmt.Sprintf("the console has not sent this line in %v: %s", l.drainWait+l.stallWait, line))
}

// consoleDrainLimit bounds Console's wait for its line to leave the tty;
// consoleStallLimit is how much longer it may take before it is repeated
// in the kernel log: at 9600 baud a 900-byte line takes about a second.
// consolePutLimit bounds put's wait for a full console buffer to take a
// line: a 4 KiB tty buffer drains in about 0.35 s at 115200 baud.
const (
	consoleDrainLimit = 200 * time.Millisecond
	consoleStallLimit = 3 * time.Second
	consolePutLimit   = 500 * time.Millisecond
)
