// SPDX-License-Identifier: Apache-2.0

// Package watchdog is the kernel's watchdog device interface
// (Documentation/watchdog/watchdog-api.rst) as keel's init uses it: find a
// hardware watchdog in sysfs, open it, set its timeout, feed it while the
// init works, and hand it over to systemd still running.
//
// It never writes the magic close character 'V': closing without it leaves
// the watchdog running, so a hang after switch_root — before systemd's
// RuntimeWatchdogSec= takes over, or in systemd itself — resets the machine
// and the boot counts as a failed try. It knows nothing of the boot, of
// modules or of the command line; the init decides what a Lease allows.
package watchdog

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is the open device file: the seam between the logic here and the
// kernel. *os.File-backed in production, a fake in the tests.
type Conn interface {
	// SetTimeout asks for a timeout in seconds (WDIOC_SETTIMEOUT).
	SetTimeout(seconds int) error
	// Timeout is the timeout the driver runs with (WDIOC_GETTIMEOUT).
	Timeout() (int, error)
	// Keepalive feeds the watchdog (WDIOC_KEEPALIVE).
	Keepalive() error
	// Close closes the file. Nothing here ever writes to it, so the
	// watchdog keeps running.
	Close() error
}

// Device is an open watchdog.
type Device struct {
	Path     string // /dev/watchdog0
	Identity string // the driver's name for it (sysfs identity)
	conn     Conn
}

// Open opens the watchdog at path. Opening starts it.
func Open(path, identity string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	return &Device{Path: path, Identity: identity, conn: fileConn{f}}, nil
}

// NewDevice wraps an open Conn (for tests and other seams).
func NewDevice(path, identity string, c Conn) *Device {
	return &Device{Path: path, Identity: identity, conn: c}
}

// SetTimeout sets the timeout to d (whole seconds) and returns the timeout
// the driver took, which may be rounded. A driver that refuses the value
// keeps its own; the error says which it kept.
func (d *Device) SetTimeout(t time.Duration) (time.Duration, error) {
	want := int(t / time.Second)
	setErr := d.conn.SetTimeout(want)
	got, err := d.conn.Timeout()
	if err != nil {
		return 0, fmt.Errorf("watchdog %s: reading the timeout: %w", d.Path, err)
	}
	if setErr != nil {
		return time.Duration(got) * time.Second, fmt.Errorf("watchdog %s (%s): setting the timeout to %d s: %w; it runs with %d s",
			d.Path, d.Identity, want, setErr, got)
	}
	return time.Duration(got) * time.Second, nil
}

// Keepalive feeds the watchdog once.
func (d *Device) Keepalive() error {
	if err := d.conn.Keepalive(); err != nil {
		return fmt.Errorf("watchdog %s: keepalive: %w", d.Path, err)
	}
	return nil
}

// HandOff feeds the watchdog a last time, so that whoever takes over gets
// the whole timeout, and closes it without the magic close: it keeps
// running. The kernel logs "watchdog did not stop!", as it should.
func (d *Device) HandOff() error {
	return errors.Join(d.Keepalive(), d.conn.Close())
}

// fileConn is the real device file.
type fileConn struct{ f *os.File }

func (c fileConn) SetTimeout(seconds int) error {
	return unix.IoctlSetPointerInt(int(c.f.Fd()), unix.WDIOC_SETTIMEOUT, seconds)
}

func (c fileConn) Timeout() (int, error) {
	return unix.IoctlGetInt(int(c.f.Fd()), unix.WDIOC_GETTIMEOUT)
}

func (c fileConn) Keepalive() error {
	_, err := unix.IoctlGetInt(int(c.f.Fd()), unix.WDIOC_KEEPALIVE)
	return err
}

func (c fileConn) Close() error { return c.f.Close() }
