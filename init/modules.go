package main

import (
	"time"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/kmod"
)

// onDemand are modules loaded only when the boot needs them: a filesystem
// when something of that type is mounted, dm-crypt when a LUKS volume is
// opened. btrfs alone pulls raid6_pq and xor, whose init benchmarks cost
// seconds under emulation on a boot that never touches btrfs.
var onDemand = []string{"btrfs", "ext4", "xfs", "vfat", "f2fs", "erofs", "dm_crypt"}

// loadModules loads mods (already dependency-closed) that are not loaded
// yet; failures are warnings, the mount that needed them fails by name.
func (b *boot) loadModules(mods []bakedconf.Module) {
	for _, err := range b.load(mods, false) {
		b.log.Warnf("modules: %v", err)
		b.rep.Warn("modules: %v", err)
	}
}

// load loads the modules of mods not loaded yet, under modMu. Failures of a
// background load (background set) are kept for the next foreground load
// to report, since the report is the main goroutine's; a foreground load
// returns its own and those.
func (b *boot) load(mods []bakedconf.Module, background bool) []error {
	b.modMu.Lock()
	defer b.modMu.Unlock()
	todo := kmod.Pending(mods, b.loaded)
	for _, m := range todo {
		b.loaded[m.Name] = true
	}
	var errs []error
	if len(todo) > 0 {
		start := time.Now()
		errs = kmod.Load(todo, "/", kmod.LoadFile)
		b.log.Debugf("%d modules loaded in %v", len(todo), timeSince(start))
	}
	if background {
		b.modErrs = append(b.modErrs, errs...)
		return nil
	}
	errs = append(b.modErrs, errs...)
	b.modErrs = nil
	return errs
}

// loadEager loads every baked module except the on-demand ones.
func (b *boot) loadEager() {
	b.loaded = map[string]bool{}
	b.loadModules(kmod.Eager(b.baked.Modules, onDemand...))
}

// need loads the named modules (a filesystem type, dm_crypt) and their
// dependencies if the initramfs has them.
func (b *boot) need(names ...string) {
	b.loadModules(kmod.Closure(b.baked.Modules, names...))
}

// prefetchRootFS starts loading, in the background, the file-system module
// a plain root= will need, so that it loads while the kernel still probes
// the disk (two vCPUs under emulation: ~0.1 s of the plain boot). The type
// is rootfstype= or, for a host-only image, the first of the plain root's
// candidate types the initramfs has a module for. Slot and single-image
// boots need squashfs, which is loaded eagerly anyway.
func (b *boot) prefetchRootFS() {
	if b.cfg.Root == "" || b.cfg.RootHash != "" || b.cfg.VerityHash != "" {
		return
	}
	if t := prefetchType(b.baked.Modules, b.cfg.RootFSType); t != "" {
		b.log.Debugf("loading %s in the background for root=%s", t, b.cfg.Root)
		go b.load(kmod.Closure(b.baked.Modules, t), true)
	}
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
