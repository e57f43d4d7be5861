// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keel-boot/keel/bakedconf"
)

// ErrDependency marks a module that was not loaded because a module it
// depends on was not.
var ErrDependency = errors.New("dependency not loaded")

// ErrNotForThisCPU is what Session.Loaded is told of a CPU-specific crypto
// module the kernel refused with ENODEV (a CPU without its instructions):
// not a failure, the kernel's generic implementation serves, and Load does
// not return it; what it accelerates loads, what uses its symbols fails with
// ErrDependency.
var ErrNotForThisCPU = errors.New("not for this CPU (ENODEV): the kernel's generic implementation serves")

// Accelerates reports whether dep is an acceleration of user: CPU-specific
// crypto (IsCPUCrypto) that a module allocating crypto at run time
// (dm-crypt, dm-verity: runtimeNeeds) waits for. No symbol of the one is
// used by the other, so the user loads without it. A dependency of
// modules.dep on CPU-specific crypto (serpent_avx2 on serpent_avx_x86_64)
// is no acceleration: its failure fails its user.
func Accelerates(dep, user bakedconf.Module) bool {
	return IsCPUCrypto(dep.Path) && len(runtimeNeeds(user.Name)) > 0
}

// Loader loads one module file with the given parameters. LoadFile is the
// real one; tests pass fakes.
type Loader func(path, params string) error

// Load loads mods in parallel: each module starts as soon as its Deps are
// loaded. A module whose dependency failed is not tried and fails with
// ErrDependency, unless it is an acceleration: CPU-specific crypto that
// dm-crypt or dm-verity waits for (Accelerates), which only speeds up what
// the kernel can do without it. A module that is already loaded (EEXIST)
// counts as loaded. Paths are taken relative to root ("/" at boot). The errors come back in
// plan order, one per module that did not load.
func Load(mods []bakedconf.Module, root string, load Loader) []error {
	return (&Session{Root: root, Loader: load}).Load(mods)
}

// Session loads each module at most once across Load calls that may run at
// the same time: the init loads most of its plan in the background while
// it waits for devices, and loads what a mount needs in the foreground. A
// call waits for the modules of its plan that another call has started
// instead of loading them again.
type Session struct {
	Root   string
	Loader Loader
	// OnPanic receives a panic of a loading goroutine (the module's load
	// fails with it); nil lets the panic go on.
	OnPanic func(any)
	// Loaded, when set, is told of each module this session tried to load
	// once its finit_module returned: when it started, and the error (nil
	// when it loaded). The init logs it with rd.debug, and starts the rest
	// of its plan once the storage drivers are in.
	Loaded func(name string, start time.Time, err error)
	// Params, when set, gives the parameters a module is loaded with.
	Params func(m bakedconf.Module) string
	// Limit, when above 0, is how many of the loads Limited selects run at
	// once, across Load calls; the others wait (after their dependencies)
	// and a freed place goes to the waiting one of the highest Priority.
	// The kernel's module loading is CPU work: twenty loads started at once
	// on two CPUs each take ten times as long, and the chain the boot waits
	// for (scsi_common, scsi_mod, libata, libahci, ahci) goes no faster than
	// the benchmarks of raid6_pq. A load that sleeps rather than computes —
	// a driver waiting for the asynchronous probing of its devices — should
	// not be Limited: it would hold a place while it sleeps.
	Limit    int
	Limited  func(m bakedconf.Module) bool
	Priority map[string]int

	lim     limiter
	mu      sync.Mutex
	jobs    map[string]*job
	running map[string]time.Time // the loads in finit_module, since when
}

// Running is a load whose finit_module has not returned yet.
type Running struct {
	Name  string
	Since time.Time
}

// Running lists the loads whose finit_module has not returned, the oldest
// first: what a boot that stopped making progress may be waiting for (a
// driver whose probe of its devices never ends holds its load in the
// kernel). A load waiting for its dependencies or for a place is not in it.
func (s *Session) Running() []Running {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := make([]Running, 0, len(s.running))
	for name, since := range s.running {
		r = append(r, Running{name, since})
	}
	slices.SortFunc(r, func(a, b Running) int {
		return cmp.Or(a.Since.Compare(b.Since), strings.Compare(a.Name, b.Name))
	})
	return r
}

// inKernel marks m's load as running from start until done is called.
func (s *Session) inKernel(name string, start time.Time) (done func()) {
	s.mu.Lock()
	if s.running == nil {
		s.running = map[string]time.Time{}
	}
	s.running[name] = start
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.running, name)
		s.mu.Unlock()
	}
}

// job is one module's load, shared by every call that needs it.
type job struct {
	done chan struct{}
	err  error // set before done is closed
}

// Load loads mods (a plan closed under dependencies, as Closure returns)
// as the package-level Load does, and returns the errors of the modules
// this call loaded; a module another call loaded or is loading is waited
// for, and its failure is that call's to report (a module of this call
// that depends on it still fails with ErrDependency, as in Load).
func (s *Session) Load(mods []bakedconf.Module) []error {
	errs := make([]error, len(mods))
	if bad := checkGraph(mods, errs); bad {
		return compact(errs)
	}
	jobs := make([]*job, len(mods))
	mine := make([]bool, len(mods))
	byName := make(map[string]int, len(mods))
	s.mu.Lock()
	if s.jobs == nil {
		s.jobs = map[string]*job{}
	}
	for i, m := range mods {
		byName[m.Name] = i
		if j, ok := s.jobs[m.Name]; ok {
			jobs[i] = j
			continue
		}
		jobs[i], mine[i] = &job{done: make(chan struct{})}, true
		s.jobs[m.Name] = jobs[i]
	}
	s.mu.Unlock()
	for i := range mods {
		if !mine[i] {
			continue
		}
		go func() {
			defer close(jobs[i].done)
			defer func() {
				if r := recover(); r != nil {
					jobs[i].err = fmt.Errorf("module %s: panic while loading: %v", mods[i].Name, r)
					if s.OnPanic == nil {
						panic(r)
					}
					s.OnPanic(r)
				}
			}()
			m := mods[i]
			for _, d := range m.Deps {
				dep := jobs[byName[d]]
				<-dep.done
				// An acceleration's failure, reported as its own,
				// does not take its user down: the kernel's generic
				// implementation serves.
				if dep.err != nil && !Accelerates(mods[byName[d]], m) {
					jobs[i].err = fmt.Errorf("module %s: %w: %s failed", m.Name, ErrDependency, d)
					return
				}
			}
			if s.Limit > 0 && s.Limited != nil && s.Limited(m) {
				s.lim.acquire(s.Limit, s.Priority[m.Name])
				defer s.lim.release() // before done is closed, even on a panic
			}
			start := time.Now()
			err := func() error {
				defer s.inKernel(m.Name, start)() // even on a panic of the loader
				return loadOne(m, s.Root, s.Loader, s.params(m))
			}()
			if s.Loaded != nil {
				s.Loaded(m.Name, start, err)
			}
			jobs[i].err = err
		}()
	}
	for i, j := range jobs {
		<-j.done
		if mine[i] && !errors.Is(j.err, ErrNotForThisCPU) {
			errs[i] = j.err
		}
	}
	return compact(errs)
}

func (s *Session) params(m bakedconf.Module) string {
	if s.Params == nil {
		return ""
	}
	return s.Params(m)
}

func loadOne(m bakedconf.Module, root string, load Loader, params string) error {
	err := load(filepath.Join(root, m.Path), params)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return nil
	}
	// A CPU-specific crypto module on a CPU without its instructions: the
	// kernel's generic implementation serves (accelerations).
	if errors.Is(err, syscall.ENODEV) && IsCPUCrypto(m.Path) {
		return fmt.Errorf("module %s: %w", m.Name, ErrNotForThisCPU)
	}
	return fmt.Errorf("module %s (%s): %w", m.Name, m.Path, err)
}

// checkGraph refuses plans that would make Load wait forever or on nothing:
// duplicate names, dependencies outside the plan, cycles. It marks the
// affected modules in errs and reports whether any was found. A plan from
// Resolve never has these; a hand-edited one might.
func checkGraph(mods []bakedconf.Module, errs []error) bool {
	byName := map[string]int{}
	bad := false
	for i, m := range mods {
		if _, dup := byName[m.Name]; dup {
			errs[i] = fmt.Errorf("module %s: listed twice in the load plan", m.Name)
			bad = true
			continue
		}
		byName[m.Name] = i
	}
	for i, m := range mods {
		for _, d := range m.Deps {
			if _, ok := byName[d]; !ok && errs[i] == nil {
				errs[i] = fmt.Errorf("module %s: dependency %s is not in the load plan", m.Name, d)
				bad = true
			}
		}
	}
	if bad {
		return true
	}
	for _, i := range cyclic(mods, byName) {
		errs[i] = fmt.Errorf("module %s: dependency cycle in the load plan", mods[i].Name)
		bad = true
	}
	return bad
}

// cyclic returns the modules that can never start (Kahn's algorithm: what is
// left once every module whose deps can finish has been removed).
func cyclic(mods []bakedconf.Module, byName map[string]int) []int {
	waiting := make([]int, len(mods))
	dependents := make([][]int, len(mods))
	var ready []int
	for i, m := range mods {
		waiting[i] = len(m.Deps)
		for _, d := range m.Deps {
			dependents[byName[d]] = append(dependents[byName[d]], i)
		}
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		i := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		for _, j := range dependents[i] {
			if waiting[j]--; waiting[j] == 0 {
				ready = append(ready, j)
			}
		}
	}
	var stuck []int
	for i, w := range waiting {
		if w > 0 {
			stuck = append(stuck, i)
		}
	}
	return stuck
}

func compact(errs []error) []error {
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}
