// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Options names the trees of a merge. Local is the old upper's etc/ (a
// missing directory means no local changes), Base the old image's /etc
// ("" when it is not available: every local change is then carried, with
// no conflicts), New the new image's /etc and Out the new upper's etc/,
// which must not exist yet unless InPlace.
type Options struct {
	Local, Base, New, Out string
	// InPlace says Out already holds a copy of Local (a btrfs snapshot of
	// the old upper, which shares its data): the merge then edits it,
	// removing what is not carried and rewriting only what changes, and
	// leaves everything carried as it is. The result is the same as a
	// merge into an empty Out.
	InPlace bool
	// Step, when set, is called after each entry is written to Out; an
	// error stops the merge there, as a power cut would (tests use it).
	Step func(rel string) error
	// workers, when not 0, replaces the package's workers (tests; 1: one
	// entry at a time, in directory order).
	workers int
}

// Conflict is a path where the local version won over a change in the new
// image, or an account entry the merge could not reconcile.
type Conflict struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Result counts what the merge did.
type Result struct {
	Carried   int        // files, symlinks and directories carried from the old upper
	Deleted   int        // local deletions (whiteouts) kept
	Same      int        // copied up but equal to the base: the new image's version stands
	Skipped   []string   // device nodes, fifos, sockets and stale .keel-new files, with why
	Conflicts []Conflict // local won; the new image's version is NAME.keel-new when it is a file
}

// KeepSuffix names the new image's version of a file kept next to the
// local one that won a conflict, like dpkg's .dpkg-dist.
const KeepSuffix = ".keel-new"

// Merge builds o.Out from the local changes in o.Local against o.Base and
// o.New (docs/data.md has the rules). It walks only o.Local. An error
// leaves o.Out incomplete: the caller builds it in a temporary directory
// and discards it (datapart.NewUpper).
func Merge(o Options) (Result, error) {
	n := o.workers
	if n == 0 {
		n = workers
	}
	sh := &shared{dirs: make(chan struct{}, dirGoroutines)}
	if n > 1 {
		sh.jobs = make(chan func(), n)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer close(sh.jobs)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for job := range sh.jobs {
					job()
				}
			}()
		}
	}
	m := &merger{o: o, noBase: o.Base == "", sh: sh}
	l, err := lookupLocal(o.Local)
	if err != nil || l.kind == Absent {
		return m.r, err
	}
	if l.kind != Dir {
		return m.r, fmt.Errorf("local changes %s: a %s, expected a directory", o.Local, l.kind)
	}
	_, err = m.dir("", l, false, func() error { return nil })
	return m.r, err
}

// workers is how many entries other than directories are merged at once,
// from all directories: long-lived goroutines fed by a queue (a goroutine
// per entry cost its start and stack growth each time, and a pool per
// directory waited for the directory's slowest entry). Each entry's work
// is mostly system calls (lookups, reads, creating a file), which under
// emulation or on a cold disk wait for the device or the other CPU: in
// flight together the waits overlap.
const workers = 4

// merger merges one subtree and counts into its own r; a directory's
// children each get their own merger (sub), merged concurrently, and are
// folded into the parent's r in directory order, so the Result is the same
// whatever order they finish in.
type merger struct {
	o      Options
	noBase bool
	r      Result
	sh     *shared
	at     at // where the parent of this merger's entries is
}

// at says where the parent of a merger's entries stands in the images. A
// parent that is not a directory in the base or the new image has no
// children there: they are not looked up, which would follow the parent
// when it is a symlink (out of the image when it is absolute). fill says
// the parent wins whole over the new image's non-directory (dir).
type at struct {
	noBaseDir, noNewDir, fill bool
}

// shared is what the mergers of one Merge share.
type shared struct {
	stepMu sync.Mutex  // Options.Step is called once at a time
	jobs   chan func() // the workers' queue of entries (nil: one at a time)
	// dirs holds a place for each directory merged by a goroutine of its
	// own; with none free, a directory is merged by its parent's.
	dirs chan struct{}
}

// dirGoroutines is how many directories are merged by goroutines of their
// own at once: a goroutine each, 200,000 subdirectories in the old upper's
// /etc (root's, or whoever held the disk) held 480 MiB of PID 1.
const dirGoroutines = 64

func (m *merger) sub(a at) *merger { return &merger{o: m.o, noBase: m.noBase, sh: m.sh, at: a} }

// fold adds a child's counts, skips and conflicts to m's.
func (m *merger) fold(c *merger) {
	m.r.Carried += c.r.Carried
	m.r.Deleted += c.r.Deleted
	m.r.Same += c.r.Same
	m.r.Skipped = append(m.r.Skipped, c.r.Skipped...)
	m.r.Conflicts = append(m.r.Conflicts, c.r.Conflicts...)
}

func (m *merger) step(rel string) error {
	if m.o.Step == nil {
		return nil
	}
	m.sh.stepMu.Lock()
	defer m.sh.stepMu.Unlock()
	return m.o.Step(rel)
}

func (m *merger) conflict(rel, format string, args ...any) {
	m.r.Conflicts = append(m.r.Conflicts, Conflict{Path: "/etc/" + rel, Reason: fmt.Sprintf(format, args...)})
}

// others looks rel up in the base and the new tree (absent under a
// parent that is not a directory there).
func (m *merger) others(rel string) (b, n entry, err error) {
	look := lookup
	if rel == "" {
		look = lookupRoot
	}
	if !m.noBase && !m.at.noBaseDir {
		if b, err = look(filepath.Join(m.o.Base, rel)); err != nil {
			return b, n, err
		}
	}
	if !m.at.noNewDir {
		n, err = look(filepath.Join(m.o.New, rel))
	}
	return b, n, err
}

// dir merges the local directory rel. The output directory is made only
// when needed (it is a local change itself, or something under it is
// carried), after its parent (parent). It reports whether it was made.
//
// A directory of the old image that the new one replaces by a symlink or
// a file wins whole when it is made (a conflict): over a non-directory
// overlayfs shows only the upper directory, so it is written opaque and
// filled with the old image's entries it does not carry, and so is every
// directory under it, the machine seeing what it saw before the update.
//
// A directory that is no local change itself (made only for what it
// holds) takes the new image's mode, owner, attributes and times, as a
// file the machine did not change is the new image's; one whose metadata
// the machine changed keeps it, a conflict when the update changed the
// mode or owner too.
func (m *merger) dir(rel string, l entry, opaque bool, parent func() error) (bool, error) {
	b, n, err := m.others(rel)
	if err != nil {
		return false, err
	}
	own := l.opaque() && !opaque // made opaque here, not under an opaque parent
	opaque = opaque || l.opaque()
	replaced := !m.noBase && n.kind != Dir && n.kind != Absent
	fill := !opaque && b.kind == Dir && (m.at.fill || replaced)
	src, reset := l, false // whose metadata the output directory has; not l's
	made := false
	var mu sync.Mutex // ensure is called by the children, concurrently
	ensure := func() error {
		mu.Lock()
		defer mu.Unlock()
		if made {
			return nil
		}
		if err := parent(); err != nil {
			return err
		}
		if m.o.InPlace {
			if err := dropStale(filepath.Join(m.o.Out, rel), l); err != nil {
				return err
			}
			if reset {
				if err := resetMeta(filepath.Join(m.o.Out, rel), src); err != nil {
					return err
				}
			}
		} else if err := mkdir(filepath.Join(m.o.Out, rel), src); err != nil {
			return err
		}
		made = true
		return m.step(rel)
	}
	carried := opaque || m.noBase || b.kind != Dir
	if !carried {
		same, err := l.sameMeta(b)
		if err != nil {
			return false, err
		}
		carried = !same
		switch {
		case same && n.kind == Dir:
			src, reset = n, true
		case n.kind == Dir && !b.sameModeOwner(n) && l.sameModeOwner(b):
			// Only its attributes changed here (a chcon, a user
			// attribute): they are kept, with the update's mode and
			// owner (found in review: the update's chmod was lost, and
			// the conflict blamed a mode change never made).
			src, reset = l, true
			src.st.Mode = src.st.Mode&^07777 | n.st.Mode&07777
			src.st.Uid, src.st.Gid = n.st.Uid, n.st.Gid
		case n.kind == Dir && !b.sameModeOwner(n) && !l.sameModeOwner(n):
			m.conflict(rel, "mode or owner changed locally and in the new image: the local one wins")
		}
	}
	if carried {
		if err := ensure(); err != nil {
			return false, err
		}
	}
	a := at{noBaseDir: b.kind != Dir, noNewDir: n.kind != Dir, fill: fill}
	if err := m.children(rel, opaque, a, ensure); err != nil {
		return made, err
	}
	if !made {
		if m.o.InPlace { // nothing under it carried: its copy is empty now
			return false, m.remove(rel, true)
		}
		return false, nil
	}
	if rel != "" {
		m.r.Carried++
	}
	if fill {
		if err := m.fill(rel); err != nil {
			return true, err
		}
	}
	if own && !m.noBase && b.kind == Dir && n.kind == Dir {
		if err := m.hiddenByOpaque(rel, l, b, n); err != nil {
			return true, err
		}
	}
	switch {
	case replaced && fill:
		m.conflict(rel, "a directory here, the new image has a %s: the directory wins whole, as it was (opaque, with the old image's entries it did not change)", n.kind)
	case replaced && b.kind != n.kind:
		m.conflict(rel, "a directory here, the new image has a %s: the directory wins", n.kind)
	}
	return true, setTimes(filepath.Join(m.o.Out, rel), src)
}

// hiddenByOpaque reports what the update adds or changes in the image's
// directory that the local opaque directory l hides (rm -r, then mkdir).
func (m *merger) hiddenByOpaque(rel string, l, b, n entry) error {
	ents, err := os.ReadDir(l.path)
	if err != nil {
		return err
	}
	local := make(map[string]bool, len(ents))
	for _, d := range ents {
		local[d.Name()] = true
	}
	return m.hiddenUnder(rel, l, b, n, local)
}

// fill makes the output directory rel opaque and copies into it each
// entry of the base directory rel that it lacks, but for what the machine
// deleted (a whiteout) or has as a special file: those it did not change
// (absent from the local directory, or copied up unchanged and so not
// carried), whole. dir calls it once the entries of rel are merged.
func (m *merger) fill(rel string) error {
	out := filepath.Join(m.o.Out, rel)
	if err := setXattr(opaqueXattr, func() error { return unix.Lsetxattr(out, opaqueXattr, []byte("y"), 0) }); err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	ents, err := os.ReadDir(filepath.Join(m.o.Base, rel))
	if err != nil {
		return err
	}
	for _, d := range ents {
		crel := filepath.Join(rel, d.Name())
		if err := unix.Lstat(filepath.Join(m.o.Out, crel), new(unix.Stat_t)); !errors.Is(err, unix.ENOENT) {
			if err != nil {
				return &fs.PathError{Op: "lstat", Path: filepath.Join(m.o.Out, crel), Err: err}
			}
			continue // carried
		}
		l, err := lookup(filepath.Join(m.o.Local, crel))
		if err != nil {
			return err
		}
		if l.kind == Whiteout || l.kind == Other {
			continue
		}
		if err := copyTree(filepath.Join(m.o.Base, crel), filepath.Join(m.o.Out, crel)); err != nil {
			return err
		}
		if err := m.step(crel); err != nil {
			return err
		}
	}
	return nil
}

// children merges the entries of the local directory rel, each into its
// own merger, folded in directory order once all are done. Directories
// are walked concurrently with their siblings and the other entries are
// queued to the workers, so creates in several directories of the output
// overlap (a file system serialises those in one directory).
func (m *merger) children(rel string, opaque bool, a at, ensure func() error) error {
	ents, err := os.ReadDir(filepath.Join(m.o.Local, rel))
	if err != nil {
		return err
	}
	if m.o.InPlace {
		// Copies of an earlier merge's NAME.keel-new go before any entry
		// is merged: NAME's merge may make a new one.
		for _, d := range ents {
			if !d.IsDir() && strings.HasSuffix(d.Name(), KeepSuffix) {
				if err := m.remove(filepath.Join(rel, d.Name()), false); err != nil {
					return err
				}
			}
		}
	}
	subs := make([]*merger, len(ents))
	errs := make([]error, len(ents))
	var wg sync.WaitGroup
	for i, d := range ents {
		crel := filepath.Join(rel, d.Name())
		c, err := lookupLocal(filepath.Join(m.o.Local, crel))
		if err != nil {
			errs[i] = err
			break
		}
		subs[i] = m.sub(a)
		job := func() {
			defer func() { // a panic here would end the process (PID 1)
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("merge %s: panic: %v", crel, r)
				}
			}()
			if c.kind == Dir {
				_, errs[i] = subs[i].dir(crel, c, opaque, ensure)
				return
			}
			errs[i] = subs[i].leaf(crel, c, opaque, ensure)
		}
		switch {
		case m.sh.jobs == nil:
			job()
		case c.kind == Dir: // not a worker: it queues its own entries
			select {
			case m.sh.dirs <- struct{}{}:
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-m.sh.dirs }()
					job()
				}()
			default:
				job()
			}
		default:
			wg.Add(1)
			m.sh.jobs <- func() {
				defer wg.Done()
				job()
			}
		}
	}
	wg.Wait()
	for _, s := range subs {
		if s != nil {
			m.fold(s)
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// remove takes rel, not carried, out of an in-place Out (a directory
// only when empty).
func (m *merger) remove(rel string, dir bool) error {
	p := filepath.Join(m.o.Out, rel)
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(unix.AT_FDCWD, p, flags); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "remove", Path: p, Err: err}
	}
	return m.step(rel)
}

// alwaysCarried are the machine's identity: carried whatever the images say.
func alwaysCarried(rel string) bool {
	return rel == "machine-id" || filepath.Dir(rel) == "ssh" && strings.HasPrefix(filepath.Base(rel), "ssh_host_")
}
