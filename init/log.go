// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Log levels, as kmsg priorities.
const (
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
}

func newLogger(console io.Writer) *logger {
	return &logger{console: console, level: prioInfo}
}

// openKmsg switches logging to /dev/kmsg and lifts the kernel's rate limit on
// userspace kmsg writes (10 lines per 5 s by default, printk_devkmsg=ratelimit),
// which would otherwise drop most of the boot log.
func (l *logger) openKmsg() {
	_ = os.WriteFile("/proc/sys/kernel/printk_devkmsg", []byte("on\n"), 0)
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		l.Warnf("cannot open /dev/kmsg, logging to the console: %v", err)
		return
	}
	l.mu.Lock()
	l.kmsg = f
	l.mu.Unlock()
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
	msg := fmt.Sprintf(format, args...)
	for _, line := range strings.Split(strings.TrimRight(msg, "\n"), "\n") {
		if len(line) > maxLine {
			line = line[:maxLine] + "…"
		}
		if l.kmsg != nil {
			if _, err := fmt.Fprintf(l.kmsg, "<%d>keel: %s\n", prio, line); err == nil {
				continue
			}
		}
		fmt.Fprintf(l.console, "keel: %s\n", line)
	}
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
// otherwise land in the middle of this one. The wait is bounded.
func (l *logger) Console(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.console, format+"\n", args...)
	if f, ok := l.console.(*os.File); ok {
		drained := make(chan struct{})
		go func() {
			_ = unix.IoctlSetInt(int(f.Fd()), unix.TCSBRK, 1) // tcdrain; ENOTTY off a terminal
			close(drained)
		}()
		// A line that cannot drain (a serial port held by flow control)
		// must not stop the boot: the wait is bounded.
		select {
		case <-drained:
		case <-time.After(consoleDrainLimit):
		}
	}
}

// consoleDrainLimit bounds Console's wait for its line to leave the tty.
const consoleDrainLimit = 200 * time.Millisecond
