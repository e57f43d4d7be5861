// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OldRoot is where systemd-shutdown leaves the booted system's root.
const OldRoot = "/oldroot"

// ErrTimeout is a step that did not finish within its bound; it may still
// be running in the kernel.
var ErrTimeout = errors.New("timed out")

// Sys is the syscall seam: the kernel in the shutdown program, fakes in
// tests. Every call may block; Undo bounds each.
type Sys struct {
	Mountinfo func() ([]byte, error)
	// Unmount is umount2(2).
	Unmount func(target string, flags int) error
	// RemountRO makes the file system mounted at target read-only (the
	// superblock, not only the mount).
	RemountRO func(target string) error
	// RemoveDM removes a device-mapper device by name; a device that is
	// gone already must be reported as ErrGone.
	RemoveDM func(name string) error
	// Holders names the processes with files open below a mount point.
	Holders func(point string) []string
	Sync    func()
	// SyncFS is syncfs(2) of the file system mounted at target: its data
	// and, on btrfs, a commit; since Linux 5.8 it reports the write-back
	// errors (EIO) that sync(2) is silent about.
	SyncFS func(target string) error
	// Dirty is how much data waits to be written back (/proc/meminfo's
	// Dirty and Writeback), to tell a sync that is slow from one that is
	// stuck; nil when unknown.
	Dirty func() (uint64, error)
	// Written is how much has been written back since boot
	// (/proc/vmstat's nr_written, in pages): a count that only grows, so
	// the surest sign that a sync is getting on. nil when unknown.
	Written func() (uint64, error)
	// Progress, when not nil, is called at each sign of progress: a step
	// of the undo that returned, a look that finds the write-back getting
	// on. The init pings the hardware watchdog systemd-shutdown left
	// running there.
	Progress func()
}

// ErrGone is RemoveDM's answer for a device that does not exist.
var ErrGone = errors.New("no such device")

// Options bound the undo.
type Options struct {
	Top    string        // what to unmount: OldRoot
	Step   time.Duration // the most one syscall may take
	Budget time.Duration // the most the whole undo may take
	// DMTries and DMWait: a device can stay busy for a moment after the
	// last unmount of what it holds; removal is retried.
	DMTries int
	DMWait  time.Duration
}

// DefaultOptions are the shutdown program's bounds.
var DefaultOptions = Options{Top: OldRoot, Step: 10 * time.Second, Budget: 45 * time.Second, DMTries: 5, DMWait: 200 * time.Millisecond}

// Problem is something that could not be undone.
type Problem struct {
	What string // "/oldroot/var", "dm keel-data"
	Err  error
	// Fallback says what was done instead: "detached lazily, read-only".
	Fallback string
	Holders  []string
}

func (p Problem) String() string {
	s := p.What + ": " + p.Err.Error()
	if len(p.Holders) > 0 {
		s += " (held by " + strings.Join(p.Holders, ", ") + ")"
	}
	if p.Fallback != "" {
		s += "; " + p.Fallback
	}
	return s
}

// Result is what Undo did.
type Result struct {
	WrittenBack []string // keel's file systems written back (syncfs), first
	Unmounted   []string // mount points, in the order unmounted
	Removed     []string // device-mapper devices
	Problems    []Problem
}

// Undo unmounts everything at or below opt.Top deepest first, then removes
// st's device-mapper devices, the last made first, and syncs. A mount that
// will not go (busy) is retried once its children are gone, then remounted
// read-only and detached lazily; every syscall is bounded by opt.Step and
// the whole by opt.Budget, after which the remaining steps are skipped and
// named. Undo never fails: what it could not do is in the Result.
func Undo(sys Sys, st State, opt Options) Result {
	u := &undoer{sys: sys, opt: opt}
	// Keel's own file systems are written back first, each waited for as
	// long as the write-back gets on: a mount of the booted system's that
	// hangs (a dead NFS or iSCSI volume) comes first in the unmount order
	// and could use up the budget, or hold the global sync behind it,
	// before the data partition's turn (found by a hunting helper).
	// Written back now, its data and its last commit are on the disk
	// whatever follows. Its errors (EIO) are named: sync(2) is silent
	// about them.
	if sys.SyncFS != nil {
		for _, target := range syncTargets(st, opt.Top, u.liveMounts()) {
			if err := waitWritingBack(sys, func() error { return sys.SyncFS(target) }, opt.Step); err != nil {
				// The rest would wait on the same disk (the root's
				// overlay writes back the data partition): the unmounts
				// and the last sync go on.
				u.res.Problems = append(u.res.Problems, Problem{What: "write-back of " + target, Err: err})
				break
			}
			u.res.WrittenBack = append(u.res.WrittenBack, target)
		}
	}
	u.deadline = time.Now().Add(opt.Budget)
	u.unmountAll()
	for i := len(st.DM) - 1; i >= 0; i-- {
		u.removeDM(st.DM[i])
	}
	// The sync has its own bound: it must run even when the budget is spent.
	if err := SyncAll(sys, opt.Step); err != nil {
		u.res.Problems = append(u.res.Problems, Problem{What: "sync", Err: err})
	}
	return u.res
}

// liveMounts is the mount table, nil if it cannot be read within a step
// (a reader that comes back late hands nothing over).
func (u *undoer) liveMounts() []MountInfo {
	got := make(chan []MountInfo, 1)
	err := within(u.opt.Step, func() error {
		b, err := u.sys.Mountinfo()
		ms, _ := ParseMountinfo(b)
		got <- ms
		return err
	})
	if err != nil {
		u.res.Problems = append(u.res.Problems, Problem{What: "mount table", Err: err})
		return nil
	}
	return <-got
}

// syncTargets are where keel's file systems that take writes are still
// mounted below top, one mount point each: the root (at top; overlay's
// syncfs writes back its upper, the data partition) and the data
// partition's file system through whichever of its mounts systemd-shutdown
// left (its own mount point, else a bind of it such as a busy /var).
// systemd-shutdown unmounts what it can before the hand-over, so a mount
// point of the record may hold nothing but the directory under it: syncfs
// there would write back that file system (the old root's /run), and say
// the data partition's was. Read-only images and tmpfs are left out.
func syncTargets(st State, top string, live []MountInfo) []string {
	var out []string
	done := map[string]bool{}
	for _, m := range st.Mounts {
		switch m.FSType {
		case "", "squashfs", "erofs", "iso9660", "tmpfs", "ramfs":
			continue
		}
		if done[m.Source] {
			continue
		}
		want, point := filepath.Join(top, m.Target), ""
		for _, l := range live {
			switch {
			case l.Source != m.Source || !Under(l.Point, top):
			case l.Point == want:
				point = want
			case point == "" && strings.HasPrefix(m.Source, "/dev/"):
				// Another mount of the same device (a bind): not for
				// "overlay", which names every overlay alike.
				point = l.Point
			}
		}
		if point != "" {
			done[m.Source] = true
			out = append(out, point)
		}
	}
	return out
}

// SyncAll is the last sync before a reboot: sync(2), waited for as
// waitWritingBack says, with sys's Sync, Dirty, Written and Progress. The
// init's emergency reboot ends with it too.
func SyncAll(sys Sys, step time.Duration) error {
	return waitWritingBack(sys, func() error { sys.Sync(); return nil }, step)
}

// waitWritingBack runs write (a sync or a syncfs), waiting as long as the
// write-back gets on, as systemd-shutdown waits for its own sync: it skips
// its last sync when it hands over to this program, so this one is the
// last before the reboot, and slow media (an SD card, a USB disk) may take
// more than a step to write back what the system left. Progress is more
// written back since the last look (Written), or, where that count is
// unknown, less data waiting than at the last look (Dirty, systemd's
// rule). Looks against the lowest figure so far took a rise, then a
// steady fall (a btrfs commit's metadata) for stalls, and gave up in the
// middle of the write-back (found by a hunting helper). Like systemd's,
// it gives up after maxStalls steps in a row without progress, naming
// why; the first look counts as progress unless the count written was
// read before the write started. Whatever the progress, it gives up after
// maxWritingBack.
func waitWritingBack(sys Sys, write func() error, step time.Duration) error {
	done := make(chan error, 1)
	written := counter(sys.Written)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		done <- write()
	}()
	t := time.NewTicker(step)
	defer t.Stop()
	ceiling := time.NewTimer(maxWritingBack)
	defer ceiling.Stop()
	last, stalls := uint64(math.MaxUint64), 0
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
		case <-ceiling.C:
			return fmt.Errorf("%w: still writing back after %v", ErrTimeout, maxWritingBack)
		}
		if sys.Dirty == nil && written == nil {
			return fmt.Errorf("%w after %v", ErrTimeout, step)
		}
		now, err := uint64(0), errors.New("no count of it")
		if sys.Dirty != nil {
			now, err = sys.Dirty()
		}
		wrote, known := written.grew()
		select {
		case err := <-done: // ended meanwhile: not a stall
			return err
		default:
		}
		if !known && err != nil {
			return fmt.Errorf("%w after %v, and what is left to write back is unknown: %v", ErrTimeout, step, err)
		}
		progressed := wrote
		if !known {
			progressed = now < last
		}
		if err == nil {
			last = now
		}
		if progressed {
			stalls = 0
			if sys.Progress != nil {
				sys.Progress()
			}
			continue
		}
		if stalls++; stalls == maxStalls {
			left := "an unknown amount"
			if err == nil {
				left = fmt.Sprintf("%d KiB", now)
			}
			return fmt.Errorf("%w: nothing written back in %v (%s left)", ErrTimeout, time.Duration(maxStalls)*step, left)
		}
	}
}

// writtenCounter follows Sys.Written from one look to the next.
type writtenCounter struct {
	read  func() (uint64, error)
	last  uint64
	first bool // no reference: the first look counts as progress
}

// counter starts following read, nil when there is none: the count before
// the write starts is the first look's reference, when it can be read.
func counter(read func() (uint64, error)) *writtenCounter {
	if read == nil {
		return nil
	}
	c := &writtenCounter{read: read}
	if n, err := read(); err == nil {
		c.last = n
	} else {
		c.first = true
	}
	return c
}

// grew reports whether more was written back since the last look, and
// whether the count could be read at all.
func (c *writtenCounter) grew() (grew, known bool) {
	if c == nil {
		return false, false
	}
	n, err := c.read()
	if err != nil {
		return false, false
	}
	grew = n > c.last || c.first
	c.last, c.first = n, false
	return grew, true
}

// maxStalls is how many steps in a row the last sync may make no progress,
// systemd-shutdown's figure.
const maxStalls = 3

// maxWritingBack bounds one write-back whatever progress it shows: pages
// written elsewhere (a writer that survived the kill, a kernel thread)
// count as progress while a sync stuck on a dead file system waits for
// ever, and the pings would keep the watchdog from ending it (found in
// review). Ten minutes is systemd's RebootWatchdogSec= default, and writes
// back gigabytes to an SD card.
const maxWritingBack = 10 * time.Minute

type undoer struct {
	sys      Sys
	opt      Options
	deadline time.Time
	res      Result
}

// bounded runs f and gives up waiting after opt.Step or at the deadline,
// whichever is first. A syscall stuck in the kernel keeps its
// thread; the shutdown goes on without it.
//
// A step that returned is progress (Sys.Progress): the watchdog is pinged
// between the steps too, not only while the last sync writes back, so that
// a hung unmount's bound and the fallbacks after it do not outlast a short
// RebootWatchdogSec (found by a hunting helper).
func (u *undoer) bounded(f func() error) error {
	d := min(u.opt.Step, time.Until(u.deadline))
	if d <= 0 {
		return fmt.Errorf("skipped: the shutdown's %v are used up", u.opt.Budget)
	}
	err := within(d, f)
	if !errors.Is(err, ErrTimeout) && u.sys.Progress != nil {
		u.sys.Progress()
	}
	return err
}

// within runs f in a goroutine and waits for it at most d.
func within(d time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
			}
		}()
		done <- f()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w after %v", ErrTimeout, d)
	}
}

func (u *undoer) unmountAll() {
	var order []MountInfo
	var odd error // lines left out; the others are unmounted all the same
	err := u.bounded(func() error {
		b, err := u.sys.Mountinfo()
		if err != nil {
			return err
		}
		var ms []MountInfo
		ms, odd = ParseMountinfo(b)
		order = UnmountOrder(ms, u.opt.Top)
		return nil
	})
	if err != nil {
		u.res.Problems = append(u.res.Problems, Problem{What: "mount table", Err: err})
		return
	}
	if odd != nil {
		u.res.Problems = append(u.res.Problems, Problem{What: "mount table", Err: odd})
	}
	var busy []MountInfo
	for _, m := range order {
		if err := u.bounded(func() error { return u.sys.Unmount(m.Point, 0) }); err != nil {
			busy = append(busy, m)
			continue
		}
		u.res.Unmounted = append(u.res.Unmounted, m.Point)
	}
	for _, m := range busy {
		u.fallback(m)
	}
}

// fallback handles a mount that would not unmount in the first pass: its
// children may be gone now; else it is made read-only and detached, so
// that what is left is at least clean on disk.
func (u *undoer) fallback(m MountInfo) {
	err := u.bounded(func() error { return u.sys.Unmount(m.Point, 0) })
	if err == nil {
		u.res.Unmounted = append(u.res.Unmounted, m.Point)
		return
	}
	p := Problem{What: m.Point, Err: err}
	if errors.Is(err, unix.EBUSY) && u.sys.Holders != nil {
		_ = u.bounded(func() error { p.Holders = u.sys.Holders(m.Point); return nil })
	}
	var done []string
	switch {
	case m.SuperReadOnly():
		// The file system's own options: a read-only bind of a writable
		// file system would stay dirty (found by a hunting helper).
		done = append(done, "read-only")
	case !virtualFS[m.FSType]:
		if rerr := u.bounded(func() error { return u.sys.RemountRO(m.Point) }); rerr != nil {
			done = append(done, "still writable: remount read-only: "+rerr.Error())
		} else {
			done = append(done, "remounted read-only")
		}
	}
	if derr := u.bounded(func() error { return u.sys.Unmount(m.Point, unix.MNT_DETACH) }); derr != nil {
		done = append(done, "not detached: "+derr.Error())
	} else {
		done = append(done, "detached lazily")
	}
	p.Fallback = strings.Join(done, ", ")
	u.res.Problems = append(u.res.Problems, p)
}

// virtualFS are file systems with nothing to keep clean on a disk.
var virtualFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "tmpfs": true, "devpts": true,
	"cgroup": true, "cgroup2": true, "mqueue": true, "debugfs": true, "tracefs": true,
	"securityfs": true, "pstore": true, "bpf": true, "configfs": true, "fusectl": true,
	"hugetlbfs": true, "autofs": true, "efivarfs": true, "binfmt_misc": true, "ramfs": true,
}

func (u *undoer) removeDM(name string) {
	var err error
	for try := 0; try < max(u.opt.DMTries, 1); try++ {
		if try > 0 && time.Until(u.deadline) > u.opt.DMWait {
			time.Sleep(u.opt.DMWait)
		}
		err = u.bounded(func() error { return u.sys.RemoveDM(name) })
		if err == nil {
			u.res.Removed = append(u.res.Removed, name)
			return
		}
		if errors.Is(err, ErrGone) {
			return
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
	}
	u.res.Problems = append(u.res.Problems, Problem{What: "dm " + name, Err: err, Fallback: "left open"})
}
