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
	todo := kmod.Pending(mods, b.loaded)
	for _, m := range todo {
		b.loaded[m.Name] = true
	}
	if len(todo) == 0 {
		return
	}
	start := time.Now()
	for _, err := range kmod.Load(todo, "/", kmod.LoadFile) {
		b.log.Warnf("modules: %v", err)
		b.rep.Warn("modules: %v", err)
	}
	b.log.Debugf("%d modules loaded in %v", len(todo), timeSince(start))
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
