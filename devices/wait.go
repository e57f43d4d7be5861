// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keel-boot/keel/devspec"
)

// ErrSourceClosed is wrapped by WaitError when the uevent source ended
// before the device appeared.
var ErrSourceClosed = errors.New("uevent source closed")

// maxSeenListed bounds the device list in a WaitError message.
const maxSeenListed = 24

// WaitError reports a device that did not appear, with the devices that did:
// what an operator needs to fix a wrong DEVSPEC or a missing driver.
type WaitError struct {
	Spec   devspec.Spec
	Waited time.Duration
	Seen   []string // one description per known device, in order of appearance
	Err    error    // context.DeadlineExceeded, context.Canceled or ErrSourceClosed
}

func (e *WaitError) Error() string {
	what := "timed out"
	switch {
	case errors.Is(e.Err, context.Canceled):
		what = "canceled"
	case errors.Is(e.Err, ErrSourceClosed):
		what = "uevent source closed"
	}
	return fmt.Sprintf("%s after %v waiting for %s (seen: %s)", what, roundWait(e.Waited), e.Spec, seenList(e.Seen))
}

func (e *WaitError) Unwrap() error { return e.Err }

func roundWait(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func seenList(seen []string) string {
	if len(seen) == 0 {
		return "no block devices"
	}
	return firstOf(seen, maxSeenListed, ", ")
}

// WaitFor returns the device node of the first device matching spec, as soon
// as one is known, probing GPTs and superblocks lazily. It blocks on uevents
// (no polling) until ctx is done, then returns a *WaitError listing what was
// seen. A /dev/NAME that already is a block node is returned at once.
func (r *Registry) WaitFor(ctx context.Context, spec devspec.Spec) (string, error) {
	return r.waitMatch(ctx, spec, "")
}

// WaitForOnDisk is WaitFor restricted to disk (a kernel name, vda) and its
// partitions: how the init takes a default-labelled partition from the
// system disk only, whatever other disks carry the same label.
func (r *Registry) WaitForOnDisk(ctx context.Context, spec devspec.Spec, disk string) (string, error) {
	return r.waitMatch(ctx, spec, disk)
}

func (r *Registry) waitMatch(ctx context.Context, spec devspec.Spec, disk string) (string, error) {
	start := time.Now()
	if spec.Kind == devspec.Path && disk == "" {
		if p, ok := r.existingNode(spec.Value); ok {
			return p, nil
		}
	}
	defer r.lockUntil(ctx)()
	for {
		if p, ok := r.match(spec, disk); ok {
			return p, nil
		}
		if j := r.claimProbe(spec, disk); j != nil {
			r.probeUnlocked(j)
			continue
		}
		if err := r.waitErr(ctx); err != nil {
			return "", &WaitError{Spec: spec, Waited: waited(ctx, start), Seen: r.seen(spec.Kind), Err: err}
		}
		r.cond.Wait()
	}
}

func (r *Registry) waitErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.closed {
		return ErrSourceClosed
	}
	return nil
}

// waited is the configured timeout when ctx has a deadline, so the message
// says "30s" rather than "30.0001s".
// A deadline already past when the wait began (a budget shared by several
// waits, spent by the earlier ones) is 0.
func waited(ctx context.Context, start time.Time) time.Duration {
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return max(dl.Sub(start), 0)
	}
	return time.Since(start)
}

// probeUnlocked reads j without holding mu, so uevents keep flowing and
// other waiters keep matching (and claiming other devices) while a device
// is read, then stores its result. Callers hold mu. A job that panics (a
// bug in a reader of disk bytes, which any stick feeds) fails that
// device's read by name (probeJob.safeRun) instead of unwinding through
// the callers' deferred unlock, which the runtime makes fatal ("unlock of
// unlocked mutex"): PID 1 would die before its emergency policy. A disk
// whose reads never end holds its reader: its table stays "being read",
// named by the waits that give up on it.
func (r *Registry) probeUnlocked(j *probeJob) {
	r.mu.Unlock()
	j.safeRun()
	r.mu.Lock()
	r.storeProbe(j)
}

// existingNode reports whether /dev/NAME already is a block device node, or
// can be made one from sysfs when Mknod is set.
func (r *Registry) existingNode(value string) (string, bool) {
	name := strings.TrimPrefix(value, "/dev/")
	p := r.nodePath(name)
	if st, err := os.Stat(p); err == nil {
		return p, st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0
	}
	if !r.opts.Mknod {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(r.opts.SysDir, "class", "block", name, "dev"))
	if err != nil {
		return "", false
	}
	major, minor, ok := ParseDevNumber(string(b))
	if !ok {
		return "", false
	}
	if err := r.ensureNode(name, major, minor); err != nil {
		logf(r.opts.Logf, "%v", err)
		return "", false
	}
	return p, true
}

// seen describes every known device, with the details relevant to kind.
// Callers hold mu.
func (r *Registry) seen(kind devspec.Kind) []string {
	var out []string
	for _, d := range r.sorted() {
		out = append(out, r.describe(d, kind))
	}
	return out
}

func (r *Registry) describe(d *device, kind devspec.Kind) string {
	s := d.DevName
	if l := r.label(d); l != "" {
		s += fmt.Sprintf(" %q", l)
	}
	if d.probe == probeRunning {
		// A disk's table (or a device's superblock) still being read: the
		// kernel's names of its partitions, shown as seen, are not matched
		// until it is.
		s += " (being read)"
	}
	switch {
	case kind == devspec.PartUUID && r.partUUID(d) != "":
		s += " PARTUUID=" + r.partUUID(d)
	case (kind == devspec.UUID || kind == devspec.Label) && d.fs.Type != "":
		s += " " + d.fs.Type
		if kind == devspec.UUID && d.fs.UUID != "" {
			s += " UUID=" + Shown(d.fs.UUID) // a LUKS header's 40 free bytes
		}
		if kind == devspec.Label && d.fs.Label != "" {
			s += fmt.Sprintf(" LABEL=%q", d.fs.Label)
		}
	}
	return s
}

// WaitAll waits for all specs concurrently and returns their device nodes
// in the same order. Every spec is waited for until ctx ends, so the error
// names all the missing devices at once, not just the first.
func (r *Registry) WaitAll(ctx context.Context, specs []devspec.Spec) ([]string, error) {
	paths := make([]string, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Go(func() { paths[i], errs[i] = r.WaitFor(ctx, s) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return paths, nil
}

// ParseDevNumber reads a sysfs dev attribute, "MAJOR:MINOR" with an
// optional trailing newline. (strconv rather than fmt.Sscanf: fmt's
// scanner is 70 KB of init for this one line.)
func ParseDevNumber(s string) (major, minor uint32, ok bool) {
	maj, mnr, found := strings.Cut(strings.TrimSuffix(s, "\n"), ":")
	if !found {
		return 0, 0, false
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(mnr, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(a), uint32(b), true
}

// lockUntil takes mu and arranges for the waiters on cond to be woken when
// ctx ends; taking mu in the wake-up means the broadcast cannot slip between
// a waiter's ctx check and its cond.Wait. The returned func releases both.
func (r *Registry) lockUntil(ctx context.Context) (unlock func()) {
	stop := context.AfterFunc(ctx, func() {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	})
	r.mu.Lock()
	return func() {
		r.mu.Unlock()
		stop()
	}
}

// Matches lists the device nodes satisfying spec among the devices known
// now, on any disk, in the order they were seen: how the init checks that
// an explicit DEVSPEC of a locked initramfs names one device only (a second
// disk may carry a copy of the same UUID, LABEL or PARTUUID). Devices not
// read yet are probed first; a probe another waiter has not finished by
// the end of ctx leaves its device out, except that a PARTLABEL counts the
// partitions of a disk still being read by the kernel's name.
func (r *Registry) Matches(ctx context.Context, spec devspec.Spec) []string {
	if spec.Kind == devspec.Path {
		if p, ok := r.existingNode(spec.Value); ok {
			return []string{p}
		}
		return nil
	}
	defer r.lockUntil(ctx)()
	for {
		if j := r.claimProbe(spec, ""); j != nil {
			r.probeUnlocked(j)
			continue
		}
		if !r.probing(spec) || ctx.Err() != nil {
			break
		}
		r.cond.Wait()
	}
	var out []string
	seen := map[string]bool{}
	for _, d := range r.sorted() {
		m := r.matchDevice(spec, d)
		if m == nil && spec.Kind == devspec.PartLabel && d.DevType == "partition" && d.PartName == spec.Value {
			// A disk still being read when ctx ended: its partitions count
			// by the kernel's name, so that a copy is not left out of the
			// count for its disk's slowness.
			if _, settled := r.partLabel(d); !settled {
				m = d
			}
		}
		if m != nil && !seen[m.DevName] {
			seen[m.DevName] = true
			out = append(out, r.nodePath(m.DevName))
		}
	}
	return out
}

// probing reports whether a device spec needs read is being probed by
// another waiter. Callers hold mu.
func (r *Registry) probing(spec devspec.Spec) bool {
	for _, d := range r.devs {
		if d.probe == probeRunning && specNeedsProbe(spec, d) {
			return true
		}
	}
	return false
}
