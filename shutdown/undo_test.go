// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"
)

// fakeKernel is a mount table and device-mapper devices over the Sys seam:
// a mount with mounts on it, or pinned (a process holds it), is busy.
type fakeKernel struct {
	mu       sync.Mutex
	mounts   []MountInfo
	pinned   map[string]bool
	writers  map[string]bool // remounting read-only fails
	hang     map[string]chan struct{}
	dm       map[string]int // open count
	log      []string
	synced   bool
	dmPinned map[string]bool
}

func newFake(t *testing.T) *fakeKernel {
	ms, err := ParseMountinfo([]byte(oldrootInfo))
	if err != nil {
		t.Fatal(err)
	}
	return &fakeKernel{mounts: ms, pinned: map[string]bool{}, writers: map[string]bool{}, hang: map[string]chan struct{}{},
		dm: map[string]int{"keel-root-a": 0, "keel-data": 0}, dmPinned: map[string]bool{}}
}

func (k *fakeKernel) sys() Sys {
	return Sys{
		Mountinfo: func() ([]byte, error) {
			k.mu.Lock()
			defer k.mu.Unlock()
			var b strings.Builder
			for _, m := range k.mounts {
				b.WriteString(strings.Join([]string{strconv.Itoa(m.ID), strconv.Itoa(m.Parent), m.Dev, Escape(m.Root), Escape(m.Point), m.Options, "-", m.FSType, Escape(m.Source), m.Super}, " ") + "\n")
			}
			return []byte(b.String()), nil
		},
		Unmount: func(target string, flags int) error {
			if c, ok := k.hang[target]; ok {
				<-c
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			i := -1 // the topmost mount on target
			for j, m := range k.mounts {
				if m.Point == target {
					i = j
				}
			}
			if i < 0 {
				return unix.EINVAL
			}
			m := k.mounts[i]
			if flags&unix.MNT_DETACH == 0 {
				if k.pinned[target] || slices.ContainsFunc(k.mounts, func(c MountInfo) bool { return c.Parent == m.ID }) {
					return unix.EBUSY
				}
			}
			k.mounts = slices.DeleteFunc(k.mounts, func(c MountInfo) bool { return c.ID == m.ID || (flags&unix.MNT_DETACH != 0 && Under(c.Point, target)) })
			k.log = append(k.log, "umount "+target)
			return nil
		},
		RemountRO: func(target string) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			if k.writers[target] {
				return unix.EBUSY
			}
			k.log = append(k.log, "ro "+target)
			return nil
		},
		RemoveDM: func(name string) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			if _, ok := k.dm[name]; !ok {
				return ErrGone
			}
			if k.dmPinned[name] {
				return unix.EBUSY
			}
			delete(k.dm, name)
			k.log = append(k.log, "dm remove "+name)
			return nil
		},
		Holders: func(point string) []string { return []string{"312 @keel-hold"} },
		Sync:    func() { k.mu.Lock(); k.synced = true; k.mu.Unlock() },
	}
}

var testOptions = Options{Top: OldRoot, Step: 2 * time.Second, Budget: 10 * time.Second, DMTries: 3, DMWait: time.Millisecond}

func TestUndoClean(t *testing.T) {
	k := newFake(t)
	res := Undo(k.sys(), State{DM: []string{"keel-root-a", "keel-data"}}, testOptions)
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %v", res.Problems)
	}
	if len(res.Unmounted) != 12 || res.Unmounted[len(res.Unmounted)-1] != "/oldroot" {
		t.Errorf("unmounted %q: want 12 mounts, /oldroot last", res.Unmounted)
	}
	if !slices.Equal(res.Removed, []string{"keel-data", "keel-root-a"}) || len(k.dm) != 0 {
		t.Errorf("removed %q, left %v: want keel-data then keel-root-a", res.Removed, k.dm)
	}
	if !k.synced {
		t.Error("no sync")
	}
	if !slices.ContainsFunc(k.mounts, func(m MountInfo) bool { return m.Point == "/run" }) {
		t.Error("/run, outside /oldroot, was unmounted")
	}
}

// TestUndoOddMountPoints: the kernel escapes only space, tab, newline and
// backslash in a mount point; a share mounted at "Team<NBSP>-<NBSP>Share"
// (a no-break space around a hyphen) or with a vertical tab used to make
// the whole table unparsable, and nothing was unmounted. Now it is one
// mount like the others; a line that cannot be parsed at all is left out,
// named, and everything else is still unmounted.
func TestUndoOddMountPoints(t *testing.T) {
	k := newFake(t)
	k.mounts = append(k.mounts,
		MountInfo{ID: 90, Parent: 21, Dev: "0:90", Root: "/", Point: "/oldroot/home/u/Team\u00a0-\u00a0Share", Options: "rw", FSType: "cifs", Source: "//nas/team", Super: "rw"},
		MountInfo{ID: 91, Parent: 21, Dev: "0:91", Root: "/", Point: "/oldroot/home/u/a\vb", Options: "rw", FSType: "tmpfs", Source: "tmpfs", Super: "rw"})
	res := Undo(k.sys(), State{DM: []string{"keel-root-a", "keel-data"}}, testOptions)
	if len(res.Problems) != 0 || len(res.Unmounted) != 14 || res.Unmounted[len(res.Unmounted)-1] != "/oldroot" {
		t.Fatalf("unmounted %q, problems %v: want all 14, /oldroot last", res.Unmounted, res.Problems)
	}
	if !slices.Contains(res.Unmounted, "/oldroot/home/u/Team\u00a0-\u00a0Share") {
		t.Errorf("unmounted %q: want the share", res.Unmounted)
	}

	k = newFake(t)
	sys := k.sys()
	table := sys.Mountinfo
	sys.Mountinfo = func() ([]byte, error) {
		b, err := table()
		return append([]byte("garbage line\n"), b...), err
	}
	res = Undo(sys, State{DM: []string{"keel-root-a", "keel-data"}}, testOptions)
	if len(res.Unmounted) != 12 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].String(), `mountinfo line 1 "garbage line"`) {
		t.Errorf("unmounted %q, problems %v: want the 12 others unmounted and the odd line named", res.Unmounted, res.Problems)
	}
}

func TestUndoBusy(t *testing.T) {
	k := newFake(t)
	k.pinned["/oldroot/var"] = true
	k.pinned["/oldroot"] = true
	k.pinned["/oldroot/run/keel/lower"] = true
	k.dmPinned["keel-data"] = true
	res := Undo(k.sys(), State{DM: []string{"keel-root-a", "keel-data", "gone-already"}}, testOptions)
	var got []string
	for _, p := range res.Problems {
		got = append(got, p.String())
	}
	want := []string{
		"/oldroot/var: device or resource busy (held by 312 @keel-hold); remounted read-only, detached lazily",
		"/oldroot/run/keel/lower: device or resource busy (held by 312 @keel-hold); read-only, detached lazily",
		"/oldroot: device or resource busy (held by 312 @keel-hold); remounted read-only, detached lazily",
		"dm keel-data: device or resource busy; left open",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems\n got %q\nwant %q", got, want)
	}
	if !slices.Contains(res.Unmounted, "/oldroot/home") || !slices.Equal(res.Removed, []string{"keel-root-a"}) {
		t.Errorf("unmounted %q removed %q: the rest must still be undone", res.Unmounted, res.Removed)
	}
	if !slices.Contains(k.log, "ro /oldroot/var") {
		t.Errorf("log %q: want /oldroot/var remounted read-only", k.log)
	}
}

// TestUndoParentAfterChildDetached: a mount that was only busy because of
// a child is unmounted properly in the second pass.
func TestUndoParentAfterChildDetached(t *testing.T) {
	k := newFake(t)
	k.pinned["/oldroot/var"] = true
	k.writers["/oldroot/var"] = true
	res := Undo(k.sys(), State{}, testOptions)
	if len(res.Problems) != 1 || res.Problems[0].Fallback != "still writable: remount read-only: device or resource busy, detached lazily" {
		t.Fatalf("problems %v: want only /oldroot/var, still writable", res.Problems)
	}
	if res.Unmounted[len(res.Unmounted)-1] != "/oldroot" {
		t.Errorf("unmounted %q: want /oldroot last, once /oldroot/var was detached", res.Unmounted)
	}
}

// TestUndoHungUnmount: an unmount that never returns costs one step's
// bound; the rest is undone and the program goes on to power off.
func TestUndoHungUnmount(t *testing.T) {
	k := newFake(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	k.hang["/oldroot/run/keel/data"] = release
	opt := testOptions
	// Every fake syscall runs under the step: one short enough to be
	// missed by a loaded host fails the mounts that do return.
	opt.Step = time.Second
	res := Undo(k.sys(), State{DM: []string{"keel-root-a"}}, opt)
	if len(res.Problems) == 0 || res.Problems[0].What != "/oldroot/run/keel/data" || !errors.Is(res.Problems[0].Err, ErrTimeout) {
		t.Fatalf("problems %v: want /oldroot/run/keel/data timed out first", res.Problems)
	}
	if !slices.Contains(res.Unmounted, "/oldroot/var") || !slices.Equal(res.Removed, []string{"keel-root-a"}) || !k.synced {
		t.Errorf("unmounted %q, removed %q, synced %v: the rest must go on", res.Unmounted, res.Removed, k.synced)
	}
}

// TestUndoBudget: once the whole budget is spent, what is left is skipped
// and named; the sync still runs.
func TestUndoBudget(t *testing.T) {
	k := newFake(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	k.hang["/oldroot/home"] = release
	opt := testOptions
	opt.Step, opt.Budget = time.Hour, 50*time.Millisecond
	res := Undo(k.sys(), State{DM: []string{"keel-data"}}, opt)
	var skipped int
	for _, p := range res.Problems {
		if strings.Contains(p.Err.Error(), "skipped") {
			skipped++
		}
	}
	if skipped == 0 || !slices.ContainsFunc(res.Problems, func(p Problem) bool { return p.What == "dm keel-data" }) || !k.synced {
		t.Errorf("problems %v, synced %v: want skipped steps named, dm keel-data among them, and a sync", res.Problems, k.synced)
	}
}

// TestSyncWaitsWhileWritingBack: the last sync before the reboot is waited
// for as long as the data left to write back shrinks from step to step (a
// slow card), and given up, named, once it stops shrinking. It used to be
// given up after one step whatever it was doing.
//
// SyncAll is called alone, with a short step: Undo's unmounts run
// under the same step, and a loaded host made them time out.
func TestSyncWaitsWhileWritingBack(t *testing.T) {
	const step = 20 * time.Millisecond
	for _, c := range []struct {
		name    string
		dirty   func(calls int) uint64
		syncs   int // Dirty calls after which the sync returns; 0: never
		problem string
	}{
		{"slow but writing back", func(n int) uint64 { return uint64(1000 - n) }, 6, ""},
		// Nothing dirty left while the sync waits for a flush: the first
		// reading counts, then two stalls are allowed.
		{"a flush after the write-back", func(int) uint64 { return 0 }, 2, ""},
		{"stalls among progress", func(n int) uint64 { return []uint64{1000, 1000, 1000, 900, 900, 800}[min(n-1, 5)] }, 6, ""},
		{"stuck", func(int) uint64 { return 500 }, 0, "timed out: nothing written back in 60ms (500 KiB left)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newFake(t)
			sys := k.sys()
			var mu sync.Mutex
			calls, release := 0, make(chan struct{})
			t.Cleanup(func() {
				mu.Lock()
				defer mu.Unlock()
				if c.syncs == 0 || calls < c.syncs {
					close(release)
				}
			})
			synced := make(chan struct{})
			sys.Dirty = func() (uint64, error) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if calls == c.syncs {
					close(release)
					<-synced // the sync has ended before this reading is used
				}
				return c.dirty(calls), nil
			}
			sys.Sync = func() { <-release; close(synced) }
			err := SyncAll(sys, step)
			if c.problem == "" {
				select {
				case <-synced:
				default:
					t.Errorf("SyncAll returned before the sync, which was writing back, ended")
				}
				if err != nil {
					t.Errorf("err = %v", err)
				}
			} else if err == nil || err.Error() != c.problem {
				t.Errorf("err = %v, want %q", err, c.problem)
			}
		})
	}
}

func TestDirtyKiB(t *testing.T) {
	n, err := DirtyKiB([]byte("MemTotal:        1004892 kB\nDirty:              1236 kB\nWriteback:            64 kB\nAnonPages:  1 kB\n"))
	if err != nil || n != 1300 {
		t.Errorf("DirtyKiB = %d, %v; want 1300", n, err)
	}
	for _, bad := range []string{"Dirty: 12 kB\n", "Dirty: x kB\nWriteback: 1 kB\n", "Dirty: 12\nWriteback: 1 kB\n"} {
		if _, err := DirtyKiB([]byte(bad)); err == nil {
			t.Errorf("DirtyKiB(%q): no error", bad)
		}
	}
}

// TestSyncProblemsNamed: a sync that panics, or whose progress cannot be
// read, is named as such.
func TestSyncProblemsNamed(t *testing.T) {
	opt := testOptions
	k := newFake(t)
	sys := k.sys()
	sys.Sync = func() { panic("boom") }
	if res := Undo(sys, State{}, opt); len(res.Problems) != 1 || res.Problems[0].String() != "sync: panic: boom" {
		t.Errorf("problems %v, want the panic named", res.Problems)
	}
	// The sync never ends and its progress cannot be read: named at the
	// first step (SyncAll alone: Undo's unmounts would run under
	// the same short step).
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	sys.Sync = func() { <-release }
	sys.Dirty = func() (uint64, error) { return 0, errors.New("no /proc/meminfo") }
	if err := SyncAll(sys, 20*time.Millisecond); err == nil || !strings.Contains(err.Error(), "what is left to write back is unknown: no /proc/meminfo") {
		t.Errorf("err = %v, want the unreadable progress named", err)
	}
}

// TestSyncProgressPings: each look that finds less data waiting than the
// one before is progress, which Progress hears of (the init pings the
// hardware watchdog there); a look after the sync ended is not.
func TestSyncProgressPings(t *testing.T) {
	release, synced := make(chan struct{}), make(chan struct{})
	calls, progress := 0, 0
	sys := Sys{
		Sync: func() { <-release; close(synced) },
		Dirty: func() (uint64, error) {
			calls++
			if calls == 4 {
				close(release)
				<-synced
			}
			return uint64(100 - 20*calls), nil
		},
		Progress: func() { progress++ },
	}
	if err := SyncAll(sys, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if progress != 3 {
		t.Errorf("Progress called %d times over 3 shrinking looks, want 3", progress)
	}
}

// TestUndoReadOnlyBindOfWritableFS: a busy mount that is read-only only as
// a bind (its superblock rw) is remounted read-only, the file system made
// clean; one whose file system is read-only is left so.
func TestUndoReadOnlyBindOfWritableFS(t *testing.T) {
	k := newFake(t)
	k.mounts = append(k.mounts,
		MountInfo{ID: 95, Parent: 21, Dev: "254:9", Root: "/", Point: "/oldroot/srv", Options: "ro,relatime", FSType: "ext4", Source: "/dev/vdb1", Super: "rw"},
		MountInfo{ID: 96, Parent: 21, Dev: "254:10", Root: "/", Point: "/oldroot/opt", Options: "ro,relatime", FSType: "ext4", Source: "/dev/vdc1", Super: "ro"})
	k.pinned["/oldroot/srv"], k.pinned["/oldroot/opt"] = true, true
	res := Undo(k.sys(), State{}, testOptions)
	var got []string
	for _, p := range res.Problems {
		got = append(got, p.String())
	}
	for _, want := range []string{"/oldroot/srv: device or resource busy (held by 312 @keel-hold); remounted read-only, detached lazily",
		"/oldroot/opt: device or resource busy (held by 312 @keel-hold); read-only, detached lazily"} {
		if !slices.Contains(got, want) {
			t.Errorf("problems %q: want %q", got, want)
		}
	}
	if !slices.Contains(k.log, "ro /oldroot/srv") || slices.Contains(k.log, "ro /oldroot/opt") {
		t.Errorf("log %q: want /oldroot/srv remounted read-only, /oldroot/opt left", k.log)
	}
}

func TestWrittenPages(t *testing.T) {
	n, err := WrittenPages([]byte("nr_dirty 12\nnr_writeback 0\nnr_written 48213\nnr_dirtied 50000\n"))
	if err != nil || n != 48213 {
		t.Errorf("WrittenPages = %d, %v; want 48213", n, err)
	}
	for _, bad := range []string{"nr_dirtied 5\n", "nr_written x\n", ""} {
		if _, err := WrittenPages([]byte(bad)); err == nil {
			t.Errorf("WrittenPages(%q): no error", bad)
		}
	}
}

// sequence returns a reader of figures, one per look, the last repeated;
// the sync it goes with ends at look end (0: never), before that look's
// figure is used.
func sequence(figures []uint64, end int, release chan struct{}, synced <-chan struct{}) func() (uint64, error) {
	n := 0
	return func() (uint64, error) {
		n++
		if n == end {
			close(release)
			<-synced
		}
		return figures[min(n-1, len(figures)-1)], nil
	}
}

// TestWriteBackRiseThenFall: the data waiting rises once (a btrfs commit's
// metadata), then falls at every look: the write-back gets on all along,
// and is waited for. Measured against the lowest figure so far, the
// rise's three looks were taken for stalls and the sync given up in the
// middle of the write-back.
func TestWriteBackRiseThenFall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, synced := make(chan struct{}), make(chan struct{})
		sys := Sys{Sync: func() { <-release; close(synced) },
			Dirty: sequence([]uint64{1000, 5000, 4000, 3000, 2000, 1500, 900}, 7, release, synced)}
		if err := SyncAll(sys, 10*time.Second); err != nil {
			t.Errorf("gave up while the write-back shrank at every look: %v", err)
		}
	})
}

// TestWriteBackCountsWhatIsWritten: where the count of pages written is
// known, it decides: more written since the last look is progress however
// the data waiting moves (a writer that keeps it level), and nothing
// written is a stall however the data waiting bounces.
func TestWriteBackCountsWhatIsWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release, synced := make(chan struct{}), make(chan struct{})
		var w uint64
		sys := Sys{Sync: func() { <-release; close(synced) },
			Dirty: sequence([]uint64{800}, 8, release, synced),
			Written: func() (uint64, error) {
				w += 100
				return w, nil
			}}
		if err := SyncAll(sys, 10*time.Second); err != nil {
			t.Errorf("gave up while pages were being written: %v", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		bounce := []uint64{900, 100, 900, 100, 900, 100, 900, 100}
		n := 0
		sys := Sys{Sync: func() { <-release },
			Dirty:   func() (uint64, error) { n++; return bounce[min(n-1, len(bounce)-1)], nil },
			Written: func() (uint64, error) { return 4242, nil }}
		err := SyncAll(sys, 10*time.Second)
		if err == nil || err.Error() != "timed out: nothing written back in 30s (900 KiB left)" {
			t.Errorf("err = %v, want a stall named after three looks with nothing written", err)
		}
	})
}

// TestUndoWritesBackKeelsFirst: keel's file systems are written back
// (syncfs) before anything is unmounted, so that mounts of the booted
// system's that hang (a dead network volume) and use up the budget cannot
// keep the data partition's data and last commit off the disk; every one
// of keel's unmounts used to be skipped then, the global sync stuck behind
// the hung file system.
func TestUndoWritesBackKeelsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFake(t)
		release := make(chan struct{})
		defer close(release)
		for i := range 5 {
			p := fmt.Sprintf("/oldroot/mnt/nfs%d", i)
			k.mounts = append(k.mounts, MountInfo{ID: 90 + i, Parent: 30, Dev: "0:5" + strconv.Itoa(i), Root: "/", Point: p, Options: "rw", FSType: "nfs4", Source: "srv:/x", Super: "rw"})
			k.hang[p] = release
		}
		sys := k.sys()
		sys.SyncFS = func(target string) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.log = append(k.log, "syncfs "+target)
			return nil
		}
		opt := testOptions
		opt.Step, opt.Budget = 10*time.Second, 45*time.Second
		res := Undo(sys, sampleState, opt)
		k.mu.Lock()
		defer k.mu.Unlock()
		if len(k.log) < 2 || k.log[0] != "syncfs /oldroot/run/keel/data" || k.log[1] != "syncfs /oldroot" {
			t.Errorf("log %q: want keel's file systems written back first, the data partition's, then the root's", k.log)
		}
		if want := []string{"/oldroot/run/keel/data", "/oldroot"}; !slices.Equal(res.WrittenBack, want) || slices.ContainsFunc(res.Problems, func(p Problem) bool { return strings.HasPrefix(p.What, "write-back") }) {
			t.Errorf("written back %q, problems %v: want %q written back, no write-back problem", res.WrittenBack, res.Problems, want)
		}
		if !slices.ContainsFunc(res.Problems, func(p Problem) bool { return strings.Contains(p.Err.Error(), "skipped") }) {
			t.Errorf("problems %v: want the hung mounts to have used up the budget (the case this guards)", res.Problems)
		}
	})
}

// TestUndoWriteBackErrorNamed: a write-back that fails (EIO: the card is
// dying) is named, as the data partition's, though the unmounts and the
// sync go on; sync(2) alone would have said nothing.
func TestUndoWriteBackErrorNamed(t *testing.T) {
	k := newFake(t)
	sys := k.sys()
	sys.SyncFS = func(target string) error {
		if target == "/oldroot/run/keel/data" {
			return unix.EIO
		}
		return nil
	}
	res := Undo(sys, sampleState, testOptions)
	if len(res.Problems) == 0 || res.Problems[0].String() != "write-back of /oldroot/run/keel/data: input/output error" {
		t.Errorf("problems %v: want the data partition's write-back error first", res.Problems)
	}
	if !slices.Contains(res.Unmounted, "/oldroot") || !k.synced {
		t.Errorf("unmounted %q, synced %v: the rest must go on", res.Unmounted, k.synced)
	}
}

// TestUndoPingsAtEachStep: every step of the undo that returns is
// progress, which Progress hears of (the init pings the hardware watchdog
// there): the pings used to come only from the last sync's looks, after
// every unmount and its fallbacks.
func TestUndoPingsAtEachStep(t *testing.T) {
	k := newFake(t)
	sys := k.sys()
	pings := 0
	sys.Progress = func() { pings++ }
	res := Undo(sys, sampleState, testOptions)
	if steps := len(res.Unmounted) + len(res.Removed); steps == 0 || pings < steps {
		t.Errorf("%d pings over %d unmounts and removals, want one at least for each", pings, steps)
	}
}

// TestSyncTargets: keel's file systems are written back where they are
// still mounted: the data partition through its own mount point, else a
// bind systemd-shutdown left (a busy /var), else not at all (its overlay
// upper is written back with the root); never through a mount point
// systemd-shutdown emptied, which would write back the old root's /run
// and call it the data partition's; never through another overlay.
func TestSyncTargets(t *testing.T) {
	all, err := ParseMountinfo([]byte(oldrootInfo))
	if err != nil {
		t.Fatal(err)
	}
	without := func(points ...string) []MountInfo {
		return slices.DeleteFunc(slices.Clone(all), func(m MountInfo) bool { return slices.Contains(points, m.Point) })
	}
	docker := MountInfo{ID: 99, Parent: 37, Dev: "0:77", Root: "/", Point: "/oldroot/var/lib/docker/overlay2/x/merged", Options: "rw", FSType: "overlay", Source: "overlay", Super: "rw"}
	for _, c := range []struct {
		name string
		live []MountInfo
		want []string
	}{
		{"all mounted", all, []string{"/oldroot/run/keel/data", "/oldroot"}},
		{"data unmounted, /var left busy", without("/oldroot/run/keel/data"), []string{"/oldroot/var", "/oldroot"}},
		{"data and binds unmounted by systemd", without("/oldroot/run/keel/data", "/oldroot/var", "/oldroot/home", "/oldroot/var/my dir"), []string{"/oldroot"}},
		{"a container's overlay", append(without("/oldroot/run/keel/data", "/oldroot/var", "/oldroot/home"), docker), []string{"/oldroot"}},
		{"no table", nil, nil},
	} {
		if got := syncTargets(sampleState, OldRoot, c.live); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestWriteBackCeiling: pages written elsewhere (a writer that survived
// the kill) count as progress while the sync itself is stuck on a dead
// file system: the wait still ends, after maxWritingBack, and the pings
// that would keep the watchdog from ending it stop there. It waited, and
// pinged, for ever (found in review).
func TestWriteBackCeiling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		var w uint64
		pings := 0
		sys := Sys{Sync: func() { <-release },
			Written:  func() (uint64, error) { w++; return w, nil },
			Progress: func() { pings++ }}
		start := time.Now()
		err := SyncAll(sys, 10*time.Second)
		if err == nil || err.Error() != "timed out: still writing back after 10m0s" || time.Since(start) != maxWritingBack {
			t.Errorf("err = %v after %v, want the ceiling named after %v", err, time.Since(start), maxWritingBack)
		}
		if pings > int(maxWritingBack/(10*time.Second)) { // the tick at the ceiling's instant may come first
			t.Errorf("%d pings: want them to stop at the ceiling", pings)
		}
	})
}

// TestUndoWriteBackStuckSkipsTheRest: a data partition whose write-back
// stops (a disk that no longer answers, without an error) costs its stall
// once: the root's syncfs, which would wait on the same disk through the
// overlay's upper, is skipped; the unmounts and the last sync go on.
func TestUndoWriteBackStuckSkipsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFake(t)
		release := make(chan struct{})
		defer close(release)
		sys := k.sys()
		var mu sync.Mutex
		var tried []string
		sys.SyncFS = func(target string) error {
			mu.Lock()
			tried = append(tried, target)
			mu.Unlock()
			<-release
			return nil
		}
		sys.Dirty = func() (uint64, error) { return 500, nil }
		res := Undo(sys, sampleState, DefaultOptions)
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(tried, []string{"/oldroot/run/keel/data"}) {
			t.Errorf("syncfs tried on %q: want the stuck data partition's alone", tried)
		}
		if len(res.Problems) == 0 || res.Problems[0].String() != "write-back of /oldroot/run/keel/data: timed out: nothing written back in 30s (500 KiB left)" {
			t.Errorf("problems %v: want the stuck write-back named first", res.Problems)
		}
		if !slices.Contains(res.Unmounted, "/oldroot") || !k.synced {
			t.Errorf("unmounted %q, synced %v: the rest must go on", res.Unmounted, k.synced)
		}
	})
}

// TestLiveMountsLate: a mount table that comes later than a step is not
// used (the reader hands nothing over once given up: run with -race), and
// is named; nothing is written back early then.
func TestLiveMountsLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFake(t)
		sys := k.sys()
		table := sys.Mountinfo
		sys.Mountinfo = func() ([]byte, error) {
			time.Sleep(2 * testOptions.Step)
			return table()
		}
		u := &undoer{sys: sys, opt: testOptions}
		if live := u.liveMounts(); live != nil || len(u.res.Problems) != 1 || u.res.Problems[0].What != "mount table" {
			t.Errorf("live %v, problems %v: want none, the late table named", live, u.res.Problems)
		}
		time.Sleep(3 * testOptions.Step) // the late reader ends in the bubble
	})
}
