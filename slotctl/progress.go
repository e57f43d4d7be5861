// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// progressEvery is how often a progress line is redrawn.
const progressEvery = 500 * time.Millisecond

// progress shows how far a long step of a command is on a terminal: one
// line, redrawn in place, with the bytes done of the total, the rate and
// the time left. A nil *progress shows nothing (--quiet, or not a
// terminal). add is safe for concurrent use.
type progress struct {
	w   io.Writer
	now func() time.Time

	mu    sync.Mutex // phase, total, start; and the writes to w
	phase string
	total int64
	start time.Time
	done  atomic.Int64
	stop  chan struct{}
	ended chan struct{}
}

// showProgress decides whether a command shows progress on stderr:
// --progress always, --quiet never, else when stderr is a terminal.
func showProgress(quiet, force, terminal bool) bool {
	if force {
		return true
	}
	return !quiet && terminal
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// newProgress returns a progress writing to w, or nil when show is false.
func newProgress(w io.Writer, now func() time.Time, show bool) *progress {
	if !show {
		return nil
	}
	return &progress{w: w, now: now}
}

// begin starts a phase of total bytes and redraws its line every
// progressEvery until end.
func (p *progress) begin(phase string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.phase, p.total, p.start = phase, total, p.now()
	p.done.Store(0)
	p.stop, p.ended = make(chan struct{}), make(chan struct{})
	p.mu.Unlock()
	go p.tick(p.stop, p.ended)
}

func (p *progress) tick(stop, ended chan struct{}) {
	defer close(ended)
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.draw(false)
		}
	}
}

// add counts n bytes done.
func (p *progress) add(n int) {
	if p != nil {
		p.done.Add(int64(n))
	}
}

// end stops the redraws and draws the phase's last line.
func (p *progress) end() {
	if p == nil || p.stop == nil {
		return
	}
	close(p.stop)
	<-p.ended
	p.stop = nil
	p.draw(true)
}

// draw writes the line: over the previous one, and with a newline when
// last.
func (p *progress) draw(last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := progressLine(p.phase, p.done.Load(), p.total, p.now().Sub(p.start))
	end := ""
	if last {
		end = "\n"
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K%s", line, end)
}

// progressLine is "writing root-b: 512.0 MiB of 1.0 GiB (50%), 100.0 MiB/s,
// 5s left": the rate and the time left once any time has passed.
func progressLine(phase string, done, total int64, elapsed time.Duration) string {
	done, total = max(done, 0), max(total, 0)
	s := fmt.Sprintf("%s: %s of %s", phase, sizeIEC(float64(done)), sizeIEC(float64(total)))
	if total > 0 {
		s += fmt.Sprintf(" (%d%%)", int(min(float64(done)/float64(total), 1)*100))
	}
	if elapsed <= 0 || done == 0 {
		return s
	}
	rate := float64(done) / elapsed.Seconds()
	s += fmt.Sprintf(", %s/s", sizeIEC(rate))
	if left := total - done; left > 0 {
		s += ", " + leftTime(float64(left)/rate) + " left"
	}
	return s
}

// sizeIEC formats n bytes with one decimal in B, KiB, MiB, GiB or TiB.
func sizeIEC(n float64) string {
	for _, u := range []struct {
		size float64
		unit string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size {
			return fmt.Sprintf("%.1f %s", n/u.size, u.unit)
		}
	}
	return fmt.Sprintf("%d B", int(n))
}

// leftTime formats seconds left, rounded up: "42s", "3m05s", "2h10m".
func leftTime(secs float64) string {
	if !(secs < 100*3600) { // NaN too
		return "over 99h"
	}
	s := int64(math.Ceil(secs))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
}
