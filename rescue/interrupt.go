// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Ctrl-C (SIGINT, or SIGQUIT: Ctrl-\) cancels the context of the command
// in the foreground (Interrupt). Built-ins run inside the shell, so the
// signal does not stop them: their reads and writes go through streams
// that fail with errInterrupted once it is cancelled, a read or an open
// the kernel may hold for ever runs in a goroutine of its own that the
// command stops waiting for (await), and the command ends with status 130.
// Only the shell's goroutines touch its state: the abandoned ones have
// nothing but their own buffer and file.

// errInterrupted is what a built-in's reads and writes return after Ctrl-C.
var errInterrupted = errors.New("interrupted")

// chunk bounds each read and write of a built-in, so that an interrupt is
// seen between two of them whatever block size dd was given.
const chunk = 64 << 10

// Interrupt ends the command in the foreground, as Ctrl-C does (Main calls
// it on SIGINT and SIGQUIT); between commands it does nothing. Unlike the
// shell's other methods it may be called from any goroutine.
func (s *Shell) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
}

// foreground makes the context of a pipeline about to run, which Interrupt
// cancels until end is called.
func (s *Shell) foreground() (ctx context.Context, end func()) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		s.cancel = nil
		s.mu.Unlock()
		cancel()
	}
}

// interrupted is a built-in's status: 130 when it failed after Ctrl-C.
func interrupted(ctx context.Context, status int) int {
	if status != 0 && ctx.Err() != nil {
		return 130
	}
	return status
}

// await runs call, which may block where no signal reaches (the open of a
// FIFO without a writer, a read of a disk that stopped answering), in a
// goroutine and waits for it or for the interrupt. An abandoned call keeps
// its goroutine until the kernel returns, then hands what it got to drop
// (a file to close); call must touch nothing but its own variables.
func await[T any](ctx context.Context, call func() (T, error), drop func(T)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, errInterrupted
	}
	type result struct {
		v   T
		err error
	}
	res := make(chan result)
	go func() {
		var r result
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.err = fmt.Errorf("internal error: %v", p)
				}
			}()
			r.v, r.err = call()
		}()
		select {
		case res <- r:
		case <-ctx.Done():
			if r.err == nil && drop != nil {
				drop(r.v)
			}
		}
	}()
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
		return zero, errInterrupted
	}
}

// openFile opens a file as os.OpenFile does, Ctrl-C ending the wait of a
// FIFO for its other end or of a device that does not answer.
func openFile(ctx context.Context, name string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := await(ctx, func() (*os.File, error) { return os.OpenFile(name, flag, perm) }, func(f *os.File) { f.Close() })
	if errors.Is(err, errInterrupted) {
		err = &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f, err
}

// stream is a built-in's standard input or output, or a file it opened:
// its reads and writes fail with errInterrupted once ctx is cancelled, and
// each moves at most a chunk.
type stream struct {
	ctx  context.Context
	raw  any      // the io.Reader or io.Writer wrapped
	file *os.File // raw, when a file

	// How reads of file wait (set at the first read): in the poller, which
	// a deadline set on Ctrl-C wakes (pipes, FIFOs, terminals, opened once
	// more non-blocking if need be: poll), else each in a goroutine of its
	// own reading into buf (disks, files).
	started  bool
	poll     *os.File
	reopened bool
	stop     func() // undoes what Ctrl-C would do to poll
	buf      []byte
}

func newStream(ctx context.Context, raw any) *stream {
	s := &stream{ctx: ctx, raw: raw}
	s.file, _ = raw.(*os.File)
	return s
}

// unwrap is what a stream wraps, for a program, which gets Ctrl-C itself.
func unwrap(x any) any {
	if s, ok := x.(*stream); ok {
		return s.raw
	}
	return x
}

func (s *stream) Read(p []byte) (int, error) {
	if s.ctx.Err() != nil {
		return 0, errInterrupted
	}
	p = p[:min(len(p), chunk)]
	if s.file == nil {
		return s.raw.(io.Reader).Read(p)
	}
	if !s.started {
		s.started = true
		s.start()
	}
	if s.poll != nil {
		n, err := s.poll.Read(p)
		if errors.Is(err, os.ErrDeadlineExceeded) && s.ctx.Err() != nil {
			err = errInterrupted
		}
		return n, err
	}
	if s.buf == nil {
		s.buf = make([]byte, chunk)
	}
	f, buf := s.file, s.buf[:len(p)]
	n, err := await(s.ctx, func() (int, error) { return f.Read(buf) }, nil)
	return copy(p, buf[:n]), err
}

// start chooses how the reads of file wait.
func (s *stream) start() {
	f := s.file
	if f.SetReadDeadline(time.Time{}) != nil {
		// Not in the poller: a terminal or a pipe the shell was given
		// (blocking) is opened once more, non-blocking, which a deadline
		// can interrupt without leaving a read behind to take the next
		// line typed.
		fi, err := f.Stat()
		if err != nil || fi.Mode()&(fs.ModeCharDevice|fs.ModeNamedPipe) == 0 {
			return
		}
		g, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
		if err != nil {
			return
		}
		if g.SetReadDeadline(time.Time{}) != nil {
			g.Close()
			return
		}
		f, s.reopened = g, true
	}
	s.poll = f
	ran := make(chan struct{})
	stop := context.AfterFunc(s.ctx, func() {
		f.SetReadDeadline(time.Unix(1, 0))
		close(ran)
	})
	s.stop = func() {
		if !stop() {
			<-ran
			f.SetReadDeadline(time.Time{})
		}
	}
}

// release ends the stream: a file given to the built-in reads again as
// before. It closes neither the file nor the writer.
func (s *stream) release() {
	if s.stop != nil {
		s.stop()
	}
	if s.reopened {
		s.poll.Close()
	}
}

func (s *stream) Write(p []byte) (int, error) {
	w := s.raw.(io.Writer)
	done := 0
	for done < len(p) {
		if s.ctx.Err() != nil {
			return done, errInterrupted
		}
		n, err := w.Write(p[done:min(len(p), done+chunk)])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// Seek seeks the file, for skip.
func (s *stream) Seek(off int64, whence int) (int64, error) {
	if sk, ok := s.raw.(io.Seeker); ok {
		return sk.Seek(off, whence)
	}
	return 0, syscall.ESPIPE
}

// ReadAt reads a device for devices.Probe, in a goroutine that Ctrl-C stops
// waiting for.
func (s *stream) ReadAt(p []byte, off int64) (int, error) {
	buf := make([]byte, len(p))
	f := s.file
	n, err := await(s.ctx, func() (int, error) { return f.ReadAt(buf, off) }, nil)
	return copy(p, buf[:n]), err
}
