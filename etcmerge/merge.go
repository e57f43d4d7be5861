// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Options names the trees of a merge. Local is the old upper's etc/ (a
// missing directory means no local changes), Base the old image's /etc
// ("" when it is not available: every local change is then carried, with
// no conflicts), New the new image's /etc and Out the new upper's etc/,
// which must not exist yet.
type Options struct {
	Local, Base, New, Out string
	// Step, when set, is called after each entry is written to Out; an
	// error stops the merge there, as a power cut would (tests use it).
	Step func(rel string) error
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
	m := &merger{o: o, noBase: o.Base == "", sh: &shared{sem: make(chan struct{}, workers)}}
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

// workers is how many entries are merged at once. Each entry's work is
// mostly system calls (lookups, reads, creating a file), which under
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
}

// shared is what the mergers of one Merge share.
type shared struct {
	stepMu sync.Mutex    // Options.Step is called once at a time
	sem    chan struct{} // a token per entry being merged concurrently
}

func (m *merger) sub() *merger { return &merger{o: m.o, noBase: m.noBase, sh: m.sh} }

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

// others looks rel up in the base and the new tree.
func (m *merger) others(rel string) (b, n entry, err error) {
	if !m.noBase {
		if b, err = lookup(filepath.Join(m.o.Base, rel)); err != nil {
			return b, n, err
		}
	}
	n, err = lookup(filepath.Join(m.o.New, rel))
	return b, n, err
}

// dir merges the local directory rel. The output directory is made only
// when needed (it is a local change itself, or something under it is
// carried), after its parent (parent). It reports whether it was made.
func (m *merger) dir(rel string, l entry, opaque bool, parent func() error) (bool, error) {
	b, n, err := m.others(rel)
	if err != nil {
		return false, err
	}
	opaque = opaque || l.opaque()
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
		if err := mkdir(filepath.Join(m.o.Out, rel), l); err != nil {
			return err
		}
		made = true
		return m.step(rel)
	}
	if opaque || m.noBase || b.kind != Dir || !l.sameMeta(b) {
		if err := ensure(); err != nil {
			return false, err
		}
	}
	if err := m.children(rel, opaque, ensure); err != nil {
		return made, err
	}
	if !made {
		return false, nil
	}
	if rel != "" {
		m.r.Carried++
	}
	if !m.noBase && n.kind != Dir && n.kind != Absent && b.kind != n.kind {
		m.conflict(rel, "a directory here, the new image has a %s: the directory wins", n.kind)
	}
	return true, setTimes(filepath.Join(m.o.Out, rel), l)
}

// children merges the entries of the local directory rel: directories in
// turn, the others concurrently (up to workers at once), each into its own
// merger, folded in directory order once all are done.
func (m *merger) children(rel string, opaque bool, ensure func() error) error {
	ents, err := os.ReadDir(filepath.Join(m.o.Local, rel))
	if err != nil {
		return err
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
		subs[i] = m.sub()
		if c.kind == Dir {
			if _, errs[i] = subs[i].dir(crel, c, opaque, ensure); errs[i] != nil {
				break
			}
			continue
		}
		m.sh.sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-m.sh.sem }()
			defer func() { // a panic here would end the process (PID 1)
				if r := recover(); r != nil {
					errs[i] = fmt.Errorf("merge %s: panic: %v", crel, r)
				}
			}()
			errs[i] = subs[i].leaf(crel, c, opaque, ensure)
		}()
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

// alwaysCarried are the machine's identity: carried whatever the images say.
func alwaysCarried(rel string) bool {
	return rel == "machine-id" || filepath.Dir(rel) == "ssh" && strings.HasPrefix(filepath.Base(rel), "ssh_host_")
}
