// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-boot/keel/bakedconf"
)

// recorder is a fake loader that checks, when a module starts, that all its
// dependencies have finished.
type recorder struct {
	mu       sync.Mutex
	deps     map[string][]string
	finished map[string]bool
	order    []string
	fail     map[string]error
	hold     func(path string) // called while "loading"
	t        *testing.T
}

func newRecorder(t *testing.T, mods []bakedconf.Module) *recorder {
	r := &recorder{t: t, deps: map[string][]string{}, finished: map[string]bool{}, fail: map[string]error{}}
	for _, m := range mods {
		r.deps[m.Path] = m.Deps
	}
	return r
}

func (r *recorder) load(path, params string) error {
	name := strings.TrimSuffix(strings.TrimPrefix(path, "/root/m/"), ".ko")
	r.mu.Lock()
	for _, d := range r.deps["/m/"+name+".ko"] {
		if !r.finished[d] {
			r.t.Errorf("%s started before its dependency %s finished", name, d)
		}
	}
	r.mu.Unlock()
	if r.hold != nil {
		r.hold(path)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.order = append(r.order, name)
	r.finished[name] = true
	return r.fail[name]
}

func mod(name string, deps ...string) bakedconf.Module {
	return bakedconf.Module{Name: name, Path: "/m/" + name + ".ko", Deps: deps}
}

func TestLoadOrder(t *testing.T) {
	mods := []bakedconf.Module{mod("a"), mod("b", "a"), mod("c", "a", "b"), mod("d"), mod("e", "d", "c")}
	r := newRecorder(t, mods)
	if errs := Load(mods, "/root", r.load); len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(r.order) != len(mods) {
		t.Fatalf("loaded %v, want all of %d", r.order, len(mods))
	}
}

// TestLoadParallel holds two independent modules until both have started:
// it can only pass if Load runs them at the same time (a serial Load
// deadlocks here, and go test's -timeout fails it with every goroutine's
// stack; no clock decides the verdict).
func TestLoadParallel(t *testing.T) {
	mods := []bakedconf.Module{mod("a"), mod("b"), mod("c", "a", "b")}
	r := newRecorder(t, mods)
	var started sync.WaitGroup
	started.Add(2)
	r.hold = func(path string) {
		if strings.HasSuffix(path, "/c.ko") {
			return
		}
		started.Done()
		started.Wait()
	}
	if errs := Load(mods, "/root", r.load); len(errs) > 0 {
		t.Fatal(errs)
	}
	if r.order[2] != "c" {
		t.Errorf("order %v, want c last", r.order)
	}
}

func TestLoadFailure(t *testing.T) {
	mods := []bakedconf.Module{mod("a"), mod("b", "a"), mod("c", "b"), mod("d"), mod("e")}
	r := newRecorder(t, mods)
	r.fail["a"] = errors.New("exec format error")
	r.fail["e"] = fmt.Errorf("finit_module: %w", fs.ErrExist) // already loaded
	errs := Load(mods, "/root", r.load)
	if len(errs) != 3 {
		t.Fatalf("errors %v, want a, b and c", errs)
	}
	if !strings.Contains(errs[0].Error(), "module a (/m/a.ko): exec format error") {
		t.Errorf("a: %v", errs[0])
	}
	for i, name := range []string{"b", "c"} {
		err := errs[i+1]
		if !errors.Is(err, ErrDependency) || !strings.Contains(err.Error(), "module "+name+":") {
			t.Errorf("%s: %v, want a dependency error", name, err)
		}
	}
	slices.Sort(r.order)
	if !slices.Equal(r.order, []string{"a", "d", "e"}) {
		t.Errorf("tried %v, want a, d, e (not the dependents of a)", r.order)
	}
}

func TestLoadBadPlan(t *testing.T) {
	tests := []struct {
		name string
		mods []bakedconf.Module
		want string
	}{
		{"unknown dep", []bakedconf.Module{mod("a", "zz")}, "dependency zz is not in the load plan"},
		{"duplicate", []bakedconf.Module{mod("a"), mod("a")}, "listed twice"},
		{"cycle", []bakedconf.Module{mod("a", "b"), mod("b", "a"), mod("c")}, "dependency cycle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A Load that waits on a bad plan hangs; go test's -timeout
			// reports it.
			errs := Load(tt.mods, "/", func(string, string) error { return nil })
			if len(errs) == 0 || !strings.Contains(errs[0].Error(), tt.want) {
				t.Fatalf("errors %v, want %q", errs, tt.want)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	if err := LoadFile("/nonexistent/x.ko", ""); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadFile = %v, want not-exist", err)
	}
}

// TestLoadResolvedPlan runs a plan from Resolve through Load: whatever
// Resolve emits (cycles broken, aliases expanded) must be loadable.
func TestLoadResolvedPlan(t *testing.T) {
	p, err := Resolve(fakeTree(t), []string{"fs-btrfs", "cyc_a", "dm_crypt", "post_user"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var loaded []string
	errs := Load(p.Baked(), "/", func(path, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		loaded = append(loaded, path)
		return nil
	})
	if len(errs) > 0 || len(loaded) != len(p.Modules) {
		t.Fatalf("errors %v, loaded %d of %d", errs, len(loaded), len(p.Modules))
	}
}

// TestSessionSharesModules: two calls at once whose plans overlap load
// each module once; the second waits for what the first has in flight,
// and a failure is reported by the call that loaded the module, while the
// other call's dependents of it fail with ErrDependency.
func TestSessionSharesModules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		plan := []bakedconf.Module{mod("crc16"), mod("mbcache"), mod("jbd2"), mod("ext4", "crc16", "mbcache", "jbd2"), mod("virtio"), mod("virtio_blk", "virtio")}
		r := newRecorder(t, plan)
		release := make(chan struct{})
		started := make(chan struct{})
		var loads sync.Map
		r.hold = func(path string) {
			if n, _ := loads.LoadOrStore(path, 0); n.(int) != 0 {
				t.Errorf("%s loaded twice", path)
			}
			loads.Store(path, 1)
			if strings.HasSuffix(path, "/jbd2.ko") {
				close(started)
				<-release
			}
		}
		r.fail["jbd2"] = errors.New("no memory")
		s := &Session{Root: "/root", Loader: r.load}
		background := make(chan []error)
		go func() { background <- s.Load(plan) }() // the init's eager load
		<-started                                  // jbd2 is loading in the background
		foreground := make(chan []error)
		var released atomic.Bool
		go func() {
			errs := s.Load(Closure(plan, "ext4"))
			if !released.Load() {
				t.Errorf("the foreground load returned %v while jbd2 was still loading", errs)
			}
			foreground <- errs
		}()
		// The verdict is the order of the two events, not a clock: once
		// every other goroutine of the bubble is blocked, a foreground Load
		// that did not wait has returned already, and is caught.
		synctest.Wait()
		released.Store(true)
		close(release)
		bg, fg := <-background, <-foreground
		if len(bg) != 2 || !strings.Contains(bg[0].Error(), "jbd2") || !errors.Is(bg[1], ErrDependency) {
			t.Errorf("background errors %v: want jbd2's failure and ext4's dependency failure", bg)
		}
		// ext4 belongs to whichever call took it first; either way the
		// foreground sees no module loaded twice and reports only its own.
		for _, err := range fg {
			if strings.Contains(err.Error(), "no memory") {
				t.Errorf("foreground reports jbd2's own failure, which the background call loaded: %v", err)
			}
		}
		if got := len(r.order); got != len(plan)-1 { // ext4 never starts
			t.Errorf("%d modules loaded (%v), want %d", got, r.order, len(plan)-1)
		}
	})
}

func TestSessionSecondCallIsFree(t *testing.T) {
	plan := []bakedconf.Module{mod("a"), mod("b", "a")}
	r := newRecorder(t, plan)
	s := &Session{Root: "/root", Loader: r.load}
	if errs := s.Load(plan); len(errs) != 0 {
		t.Fatal(errs)
	}
	if errs := s.Load(Closure(plan, "b")); len(errs) != 0 || len(r.order) != 2 {
		t.Errorf("second load: errors %v, %d loads in all (want 2)", errs, len(r.order))
	}
}

// TestSessionLoaded: the Loaded hook hears of every module the session
// tried, once, with its error; not of one skipped for a failed dependency.
func TestSessionLoaded(t *testing.T) {
	mods := []bakedconf.Module{mod("a"), mod("b", "a"), mod("c"), mod("d", "c")}
	var mu sync.Mutex
	got := map[string]error{}
	s := &Session{Root: "/root", Loader: func(path, _ string) error {
		if strings.HasSuffix(path, "/c.ko") {
			return errors.New("no such device")
		}
		return nil
	}, Loaded: func(name string, _ time.Time, err error) {
		mu.Lock()
		defer mu.Unlock()
		if _, twice := got[name]; twice {
			t.Errorf("%s reported twice", name)
		}
		got[name] = err
	}}
	s.Load(mods)
	s.Load(mods) // loaded or failed already: nothing new to report
	if len(got) != 3 || got["a"] != nil || got["b"] != nil || got["c"] == nil {
		t.Errorf("Loaded heard %v, want a and b loaded, c failed, d not tried", got)
	}
}

// TestSessionParams: each module is loaded with the parameters Params
// gives it, and with none when Params is not set.
func TestSessionParams(t *testing.T) {
	mods := []bakedconf.Module{mod("a"), mod("b", "a")}
	for _, withParams := range []bool{true, false} {
		var mu sync.Mutex
		got := map[string]string{}
		s := &Session{Root: "/root", Loader: func(path, params string) error {
			mu.Lock()
			defer mu.Unlock()
			got[path] = params
			return nil
		}}
		want := map[string]string{"/root/m/a.ko": "", "/root/m/b.ko": ""}
		if withParams {
			s.Params = func(m bakedconf.Module) string {
				if m.Name == "a" {
					return "async_probe"
				}
				return ""
			}
			want["/root/m/a.ko"] = "async_probe"
		}
		if errs := s.Load(mods); len(errs) != 0 {
			t.Fatal(errs)
		}
		if !maps.Equal(got, want) {
			t.Errorf("Params set: %v: loaded with %v, want %v", withParams, got, want)
		}
	}
}

// TestLoadCPUCryptoNoDevice: a CPU-specific crypto module refused with
// ENODEV (a CPU without the instructions) is not a failure; any other
// module refused with ENODEV, or the crypto module refused otherwise (or
// its own dependency), is. Either way what waits for it loads: the
// kernel's generic implementation serves.
func TestLoadCPUCryptoNoDevice(t *testing.T) {
	cryptd := bakedconf.Module{Name: "cryptd", Path: "/lib/modules/v/kernel/crypto/cryptd.ko"}
	accel := bakedconf.Module{Name: "aesni_intel", Path: "/lib/modules/v/kernel/arch/x86/crypto/aesni-intel.ko", Deps: []string{"cryptd"}}
	other := bakedconf.Module{Name: "padlock_aes", Path: "/lib/modules/v/kernel/drivers/crypto/padlock-aes.ko"}
	user := bakedconf.Module{Name: "dm_crypt", Path: "/lib/modules/v/kernel/drivers/md/dm-crypt.ko", Deps: []string{"aesni_intel"}}
	serpent := bakedconf.Module{Name: "serpent_avx_x86_64", Path: "/lib/modules/v/kernel/arch/x86/crypto/serpent-avx-x86_64.ko"}
	serpent2 := bakedconf.Module{Name: "serpent_avx2", Path: "/lib/modules/v/kernel/arch/x86/crypto/serpent-avx2.ko", Deps: []string{"serpent_avx_x86_64"}}
	for _, tt := range []struct {
		name        string
		fail        map[string]error
		wantErr     []string
		wantSkipped []string
	}{
		{"no AES-NI", map[string]error{"aesni-intel.ko": syscall.ENODEV, "padlock-aes.ko": syscall.ENODEV}, []string{"padlock_aes"}, []string{"aesni_intel"}},
		{"bad module", map[string]error{"aesni-intel.ko": syscall.ENOEXEC}, []string{"aesni_intel"}, nil},
		{"its dependency failed", map[string]error{"cryptd.ko": syscall.ENOEXEC}, []string{"cryptd", "aesni_intel"}, nil},
		// serpent_avx2 uses serpent_avx_x86_64's symbols: a dependency
		// of modules.dep, not an acceleration.
		{"a real dependency", map[string]error{"serpent-avx-x86_64.ko": syscall.ENODEV}, []string{"serpent_avx2"}, []string{"serpent_avx_x86_64"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var loaded []string
			load := func(path, _ string) error {
				if err := tt.fail[filepath.Base(path)]; err != nil {
					return err
				}
				mu.Lock()
				loaded = append(loaded, filepath.Base(path))
				mu.Unlock()
				return nil
			}
			var skipped []string
			s := Session{Root: "/", Loader: load, Loaded: func(name string, _ time.Time, err error) {
				if errors.Is(err, ErrNotForThisCPU) {
					mu.Lock()
					skipped = append(skipped, name)
					mu.Unlock()
				}
			}}
			errs := s.Load([]bakedconf.Module{cryptd, accel, other, user, serpent, serpent2})
			var got []string
			for _, err := range errs {
				got = append(got, strings.TrimSuffix(strings.Fields(err.Error())[1], ":"))
			}
			if !slices.Equal(got, tt.wantErr) {
				t.Errorf("failed %v (%v), want %v", got, errs, tt.wantErr)
			}
			if !slices.Contains(loaded, "dm-crypt.ko") {
				t.Errorf("loaded %v: dm-crypt not loaded", loaded)
			}
			if slices.Contains(loaded, "serpent-avx2.ko") == slices.Contains(tt.wantErr, "serpent_avx2") {
				t.Errorf("loaded %v: serpent_avx2 tried after its dependency failed, or not tried after it loaded", loaded)
			}
			slices.Sort(skipped)
			if want := tt.wantSkipped; !slices.Equal(skipped, want) {
				t.Errorf("told Loaded %v was not for this CPU, want %v", skipped, want)
			}
		})
	}
}

// TestSessionRunning: Running lists the loads in the kernel (the loader
// has not returned), the oldest first; not one waiting for a dependency,
// nor one that returned, nor one whose loader panicked.
func TestSessionRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := map[string]chan struct{}{"a": make(chan struct{}), "c": make(chan struct{})}
		s := &Session{Root: "/", OnPanic: func(any) {}, Loader: func(path, _ string) error {
			name := strings.TrimSuffix(filepath.Base(path), ".ko")
			if name == "p" {
				panic("loader bug")
			}
			if ch, ok := release[name]; ok {
				<-ch
			}
			return nil
		}}
		start := time.Now()
		go s.Load([]bakedconf.Module{mod("a"), mod("b", "a"), mod("p")})
		time.Sleep(time.Second)
		go s.Load([]bakedconf.Module{mod("c")})
		synctest.Wait()
		want := []Running{{"a", start}, {"c", start.Add(time.Second)}}
		if got := s.Running(); !slices.Equal(got, want) {
			t.Errorf("Running = %v, want %v (b waits for a: not in the kernel; p panicked)", got, want)
		}
		close(release["a"])
		synctest.Wait()
		if got := s.Running(); !slices.Equal(got, want[1:]) {
			t.Errorf("after a and b returned: Running = %v, want %v", got, want[1:])
		}
		close(release["c"])
		synctest.Wait()
		if got := s.Running(); len(got) != 0 {
			t.Errorf("after every load returned: Running = %v, want none", got)
		}
	})
}
