// SPDX-License-Identifier: Apache-2.0

// Package mounts knows mounting: mounts described as data, undone in reverse
// on failure, the overlay stack over the read-only image, and switch_root.
// It knows nothing about slots or verity.
package mounts

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount describes one mount(2) call.
type Mount struct {
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
	// Prepare lists directories created before mounting, after the mounts
	// before this one (overlay's upper and work inside a fresh tmpfs).
	Prepare []string
}

func (m Mount) String() string {
	s := fmt.Sprintf("%s on %s (%s", m.Source, m.Target, m.FSType)
	if f := flagNames(m.Flags); f != "" {
		s += ", " + f
	}
	if m.Data != "" {
		s += ", " + m.Data
	}
	return s + ")"
}

var flagTable = []struct {
	flag uintptr
	name string
}{
	{unix.MS_RDONLY, "ro"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
	{unix.MS_NOEXEC, "noexec"}, {unix.MS_BIND, "bind"}, {unix.MS_MOVE, "move"},
	{unix.MS_REC, "rec"}, {unix.MS_REMOUNT, "remount"},
}

func flagNames(f uintptr) string {
	var names []string
	for _, e := range flagTable {
		if f&e.flag != 0 {
			names = append(names, e.name)
		}
	}
	return strings.Join(names, ",")
}

// Error is a failed mount: it names everything about the call and wraps the
// errno so errors.Is(err, unix.EBUSY) works.
type Error struct {
	Mount Mount
	Err   error
}

func (e *Error) Error() string { return "mount " + e.Mount.String() + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Sys is the syscall seam: the real kernel in the init, a recorder in tests.
type Sys struct {
	Mount    func(source, target, fstype string, flags uintptr, data string) error
	Unmount  func(target string, flags int) error
	MkdirAll func(path string, perm os.FileMode) error
}

// Kernel is the Sys that calls the kernel.
var Kernel = Sys{Mount: unix.Mount, Unmount: unix.Unmount, MkdirAll: os.MkdirAll}

// Stack is the mounts made so far, undone in reverse when a later step fails.
type Stack struct {
	Sys  Sys
	done []Mount
}

// NewStack returns an empty stack over the real kernel.
func NewStack() *Stack { return &Stack{Sys: Kernel} }

// Do creates the target directory and mounts m, remembering it for Undo.
func (s *Stack) Do(m Mount) error {
	for _, d := range append(m.Prepare, m.Target) {
		if err := s.Sys.MkdirAll(d, 0o755); err != nil {
			return &Error{Mount: m, Err: fmt.Errorf("create %s: %w", d, err)}
		}
	}
	if err := s.Sys.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return &Error{Mount: m, Err: err}
	}
	s.done = append(s.done, m)
	return nil
}

// DoAll mounts each of ms in order, stopping at the first failure.
func (s *Stack) DoAll(ms ...Mount) error {
	for _, m := range ms {
		if err := s.Do(m); err != nil {
			return err
		}
	}
	return nil
}

// Mounts returns what has been mounted so far, in order.
func (s *Stack) Mounts() []Mount { return append([]Mount(nil), s.done...) }

// Undo unmounts everything in reverse order (lazily, so a busy mount does not
// stop the rest) and returns the errors it met.
func (s *Stack) Undo() []error { return s.UndoTo(0) }

// Len is the number of mounts made so far: a mark for UndoTo.
func (s *Stack) Len() int { return len(s.done) }

// UndoTo unmounts, like Undo, the mounts made after the first n (see Len),
// and forgets them; the first n stay.
func (s *Stack) UndoTo(n int) []error {
	n = min(max(n, 0), len(s.done))
	var errs []error
	for i := len(s.done) - 1; i >= n; i-- {
		m := s.done[i]
		if m.Flags&unix.MS_MOVE != 0 || m.Flags&unix.MS_REMOUNT != 0 {
			continue
		}
		if err := s.Sys.Unmount(m.Target, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Target, err))
		}
	}
	s.done = s.done[:n]
	return errs
}
