// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
)

// onDemand are modules loaded only when the boot needs them: a filesystem
// when something of that type is mounted, dm-crypt and the cipher modes it
// asks for by name (dmCrypt) when a LUKS volume is seen or opened. btrfs
// alone pulls raid6_pq and xor, whose init benchmarks cost seconds under
// emulation on a boot that never touches btrfs; xts, ecb and cbc cost a
// boot without LUKS CPU time while its storage drivers and file system load.
// efivarfs is loaded on a UEFI boot only (loaderPartUUID).
var onDemand = append([]string{"btrfs", "ext4", "xfs", "vfat", "f2fs", "erofs", efivarfsModule}, dmCrypt...)

// loadModules loads mods (already dependency-closed) that are not loaded
// yet, waiting for those a background load has in flight; failures are
// warnings, the mount that needed them fails by name.
func (b *boot) loadModules(mods []bakedconf.Module) {
	start := time.Now()
	for _, err := range b.mods.Load(mods) {
		b.log.Warnf("modules: %v", err)
		b.rep.Warn("modules: %v", err)
	}
	b.log.Debugf("modules %v ready in %v", names(mods), timeSince(start))
}

// background loads mods while the boot goes on: most of the plan loads
// while the init waits for devices, reads headers and checks signatures.
// Whatever needs a module asks for it with need, which waits for it if it
// is in flight. Failures are reported by waitBackground.
func (b *boot) background(mods []bakedconf.Module) {
	if len(mods) == 0 {
		return
	}
	b.inBackground("the background module loader", func() { b.loadInBackground(mods) })
}

// inBackground runs fn in a goroutine that the boot waits for before it
// writes the report (waitBackground). Add is called here, by the boot's
// own goroutine, never by another background goroutine.
func (b *boot) inBackground(where string, fn func()) {
	b.bg.Add(1)
	b.goSafeThen(where, fn, b.bg.Done)
}

// loadInBackground loads mods and keeps the failures for waitBackground.
func (b *boot) loadInBackground(mods []bakedconf.Module) {
	start := time.Now()
	errs := b.mods.Load(mods)
	b.log.Debugf("%d modules loaded in the background in %v", len(mods), timeSince(start))
	b.bgMu.Lock()
	b.bgErrs = append(b.bgErrs, errs...)
	b.bgMu.Unlock()
}

// waitBackground waits for the background loads, at most limit (forever
// when limit is negative, not at all when it is 0), and reports the
// failures of those that ended. It reports whether they all ended. The
// boot waits for them before it writes the report and switches root, which
// deletes the module files; the emergency path waits a little, so that the
// report is complete and the failure message is not broken up by the
// kernel's messages from drivers still loading.
func (b *boot) waitBackground(limit time.Duration) bool {
	return b.waitBackgroundInto(limit, b.rep)
}

// waitBackgroundInto is waitBackground reporting into rep (the emergency
// policy's report, which may not be b.rep: failureReport).
func (b *boot) waitBackgroundInto(limit time.Duration, rep *report.Report) bool {
	if b.mods == nil {
		return true
	}
	b.stopStorage()
	done := make(chan struct{})
	b.goSafe("the wait for background modules", func() { b.bg.Wait(); close(done) })
	ended := true
	switch {
	case limit < 0:
		<-done
	case limit == 0:
		select {
		case <-done:
		default:
			ended = false
		}
	default:
		select {
		case <-done:
		case <-time.After(limit):
			ended = false
		}
	}
	b.reportBackground(rep)
	return ended
}

// reportBackground reports into rep the failures of the background loads
// that ended, once each.
func (b *boot) reportBackground(rep *report.Report) {
	b.bgMu.Lock()
	errs := b.bgErrs
	b.bgErrs = nil
	b.bgMu.Unlock()
	for _, err := range errs {
		b.log.Warnf("modules: %v", err)
		rep.Warn("modules: %v", err)
	}
}

// loadEager starts loading every baked module except the on-demand ones
// and the watchdog drivers (eagerModules): the storage drivers first (those
// with device aliases only for a device present: loadStorage), then
// the rest (squashfs, overlay, the device mapper, crypto) once every
// storage driver's init has returned (live: the kernel's announcement of
// each, or its load ending). storageLoaded is closed once the storage
// drivers' loads have returned, which includes the asynchronous probing
// their inits started (a SATA port's link): the system disk is chosen then
// (chooseSlotDisk), without waiting for modules that announce no disk. The
// rest loads while the drivers probe their buses instead of after.
func (b *boot) loadEager(live *liveSet) { b.loadEagerWith(kmod.LoadFile, live) }

func (b *boot) loadEagerWith(load kmod.Loader, live *liveSet) {
	b.storageLive = live
	params := asyncProbe(b.baked.Modules)
	b.mods = &kmod.Session{Root: "/", Loader: load, OnPanic: func(r any) { b.panicked("a module load", r) }, Loaded: b.moduleLoaded, Params: params,
		Limit: runtime.NumCPU() + 1, Limited: func(m bakedconf.Module) bool { return params(m) != "" }, Priority: loadPriority(b.baked.Modules)}
	plan := eagerModules(b.baked.Modules)
	gate := newStorageGate(plan)
	if b.storageEv == nil { // made by startDevices when the socket opened first
		b.storageEv = newStorageEvents()
	}
	rest := plan
	if len(gate.gated) > 0 {
		rest = kmod.Eager(plan, gate.gatedNames()...) // loadStorage loads those a device asks for
	}
	done := make(chan struct{})
	b.storageLoaded = done
	b.inBackground("the background module loader", func() { b.loadStorage(gate, live, done) })
	b.inBackground("the background module loader", func() {
		select {
		case <-live.all:
			b.log.Debugf("storage drivers live: loading the rest of the plan while they probe")
		case <-done:
		}
		b.loadInBackground(rest)
	})
}

// asyncProbe gives the parameters each module of plan is loaded with:
// "async_probe" for every module that drives no device of its own — file
// systems, the device mapper, crypto, libraries (a module another module
// of the plan depends on) — and none for the drivers (storage, watchdog).
//
// The kernel ends every module load by waiting for all the asynchronous
// work in flight (async_synchronize_full in do_init_module), unless the
// module was loaded with async_probe: without it, btrfs, squashfs or
// libata, loaded while AHCI probes its empty SATA ports, return only when
// the last port's link is found down (~0.5 s under emulation), and whatever
// waits for them (the data partition's mount, the next storage library)
// waits for that too. The drivers keep the wait: a storage driver's load
// returning still means that every disk it drives was announced, and the
// async work a library started is waited for by the load of its dependent
// driver, which comes after it (docs/boot-sequence.md, the devices phase).
func asyncProbe(plan []bakedconf.Module) func(bakedconf.Module) string {
	lib := map[string]bool{}
	for _, m := range plan {
		for _, d := range m.Deps {
			lib[d] = true
		}
	}
	return func(m bakedconf.Module) string {
		if isStorageDriver(m.Path) && !lib[m.Name] {
			return ""
		}
		return "async_probe"
	}
}

// loadPriority orders the loads that wait for a place (kmod.Session's
// Limit: one more than the CPUs, for the modules loaded with async_probe —
// the libraries, file systems, crypto; a driver's load, which sleeps while
// its devices are probed, takes no place): the storage drivers'
// dependencies first, because the system disk is chosen only when every
// storage driver's load has returned (AHCI's then probes its empty ports
// for 0.4 s, asleep), then by Heights, the longest chain of modules
// waiting above each. Without it the first twenty loads, the btrfs chain's
// among them, shared two CPUs from the init's first milliseconds, and
// libata's load waited behind raid6_pq's benchmarks (BENCHMARKS.md,
// "Seventh pass").
func loadPriority(mods []bakedconf.Module) map[string]int {
	p := kmod.Heights(mods)
	for _, m := range storageDrivers(eagerModules(mods)) {
		p[m.Name] += len(mods) + 1 // above any height
	}
	return p
}

// storageNames are the names of the storage drivers of the baked plan
// (and their dependencies): the modules loadEager starts first.
func storageNames(baked []bakedconf.Module) []string {
	return names(storageDrivers(eagerModules(baked)))
}

// moduleLoaded is told of each module load that returned: logged with
// rd.debug (its start and duration place it on the console's kernel
// clock), and marked in storageLive, so that a driver the kernel never
// announces (built in, already loaded, failed) does not hold the rest of
// the plan up.
func (b *boot) moduleLoaded(name string, start time.Time, err error) {
	b.storageLive.mark(name)
	switch {
	case err == nil:
		b.log.Debugf("module %s loaded in %v", name, timeSince(start))
	case errors.Is(err, kmod.ErrNotForThisCPU):
		b.log.Debugf("%v", err)
	}
}

// liveSet closes all once every module it was made for is marked live:
// announced by the kernel (devices.ModuleAdded) or its load returned.
// mark is safe from any goroutine and ignores other names.
type liveSet struct {
	mu      sync.Mutex
	pending map[string]bool
	all     chan struct{}
}

func newLiveSet(names []string) *liveSet {
	s := &liveSet{pending: map[string]bool{}, all: make(chan struct{})}
	for _, n := range names {
		s.pending[strings.ReplaceAll(n, "-", "_")] = true
	}
	if len(s.pending) == 0 {
		close(s.all)
	}
	return s
}

func (s *liveSet) mark(name string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	name = strings.ReplaceAll(name, "-", "_")
	if !s.pending[name] {
		return
	}
	delete(s.pending, name)
	if len(s.pending) == 0 {
		close(s.all)
	}
}

// notStorage are the module directories (under kernel/) that hold no
// driver of a bus or a disk: file systems, the device mapper, crypto and
// libraries. Every other module of the plan counts as a storage driver,
// so that a driver in an unexpected place is waited for rather than not.
var notStorage = []string{"kernel/fs/", "kernel/drivers/md/", "kernel/crypto/", "kernel/lib/", "kernel/block/"}

// storageDrivers returns the modules of plan that drive buses and disks,
// with their dependencies (kmod.Closure).
func storageDrivers(plan []bakedconf.Module) []bakedconf.Module {
	var roots []string
	for _, m := range plan {
		if isStorageDriver(m.Path) {
			roots = append(roots, m.Name)
		}
	}
	return kmod.Closure(plan, roots...)
}

func isStorageDriver(path string) bool {
	if kmod.IsCPUCrypto(path) { // any architecture's
		return false
	}
	for _, dir := range notStorage {
		if strings.Contains(path, "/"+dir) || strings.HasPrefix(path, dir) {
			return false
		}
	}
	return true
}

// eagerModules is the part of the plan loaded at once: all but the
// on-demand modules, and the watchdog drivers (and softdog), which load
// only for rd.watchdog= (watchdog.go).
func eagerModules(mods []bakedconf.Module) []bakedconf.Module {
	return kmod.Eager(mods, slices.Concat(onDemand, kmod.WatchdogModules(), []string{softdog})...)
}

// need loads the named modules (a filesystem type, dm-verity, dm-crypt)
// and their dependencies if the initramfs has them, or waits for them if
// they are loading.
func (b *boot) need(names ...string) {
	b.loadModules(kmod.Closure(b.baked.Modules, names...))
}

func names(mods []bakedconf.Module) []string {
	out := make([]string, len(mods))
	for i, m := range mods {
		out[i] = m.Name
	}
	return out
}

// startFSPrefetch starts loading, in the background, the file-system
// modules the configuration will need before any disk is known
// (fsPrefetch): the early-mounts phase calls it as soon as /proc is
// mounted, with the command line parsed once ahead of the config phase
// (which parses it again, reports its problems and may refuse it), so
// that the file system's chain (ext4 with jbd2; btrfs with raid6_pq and
// its benchmark) loads beside the storage drivers from the init's first
// milliseconds instead of after the config phase. Without a baked plan
// or a readable command line then, the devices phase calls it with the
// parsed configuration. Only modules of the baked plan load, as the
// eager plan does; a locked image that then refuses the command line has
// loaded one of its own file systems, nothing else.
func (b *boot) startFSPrefetch(cfg kargs.Config) {
	if b.fsPrefetch != nil || b.baked == nil || b.mods == nil {
		return
	}
	types, why := fsPrefetch(cfg, b.baked.Modules)
	b.fsPrefetch = &prefetched{types: types, why: why}
	if len(types) > 0 {
		b.background(kmod.Closure(b.baked.Modules, types...))
	}
}

// logFSPrefetch says, once the log level is known, what startFSPrefetch
// started.
func (b *boot) logFSPrefetch() {
	if p := b.fsPrefetch; p != nil && len(p.types) > 0 && !p.logged {
		p.logged = true
		b.log.Debugf("loading %v in the background for %s", p.types, p.why)
	}
}

type prefetched struct {
	types  []string
	why    string
	logged bool
}

// fsPrefetch is the file system worth loading before any disk is known,
// and why: for a plain root= (no root hash), rootfstype= or the first
// plain root type of the plan (prefetchType); in slot mode when the
// configuration asks for a data partition (data=, or overlay=persistent,
// on the command line or baked by mkinitrd --cmdline), the first data
// file system of the plan (btrfs, then ext4) — without asking, a slot
// boot with no data partition would wait for a btrfs it never mounts
// before it switches root; data=none (or a data= that does not parse)
// asks for none. Slot and single-image roots need squashfs,
// which is in the eager plan. The data partition's own type is loaded
// when it appears (prefetchData).
func fsPrefetch(cfg kargs.Config, plan []bakedconf.Module) ([]string, string) {
	if cfg.Root != "" {
		if cfg.RootHash != "" || cfg.VerityHash != "" {
			return nil, ""
		}
		if t := prefetchType(plan, cfg.RootFSType); t != "" {
			return []string{t}, "root=" + cfg.Root
		}
		return nil, ""
	}
	if cfg.Data != "" || cfg.Overlay == mounts.OverlayPersistent {
		if _, ok := dataSpec(cfg.Data); !ok { // data=none, or refused
			return nil, ""
		}
		if t := firstDataFS(plan); t != "" {
			return []string{t}, "the data partition"
		}
	}
	return nil, ""
}

// prefetchType is the file-system module worth loading before the root
// device is known: want if given and in the plan, else the first plain
// root type in the plan; "" for none.
func prefetchType(mods []bakedconf.Module, want string) string {
	types := plainFSTypes
	if want != "" {
		types = []string{want}
	}
	for _, t := range types {
		if len(kmod.Closure(mods, t)) > 0 {
			return t
		}
	}
	return ""
}
