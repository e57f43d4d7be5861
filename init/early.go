// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/mounts"
)

// earlyMounts is the early-mounts phase: the baked module plan starts
// loading first (startModules), then /proc, /sys, /dev (devtmpfs) and
// /run are mounted, then /dev/kmsg is opened for the log.
func (b *boot) earlyMounts() error {
	b.startModules(bakedconf.Path, kmod.LoadFile)
	b.stack = mounts.NewStack()
	for _, m := range mounts.Early() {
		if err := b.stack.Do(m); err != nil {
			return fmt.Errorf("early mounts: %w", err)
		}
	}
	b.log.openKmsg()
	return nil
}

// startModules reads the baked configuration and starts loading its module
// plan (loadEager) before anything else: the storage drivers then probe
// the disks while the init mounts the API file systems and parses the
// command line, instead of after (docs/boot-sequence.md). finit_module
// needs no mount, and no disk is missed for it: the devices phase opens
// the uevent socket, then coldplugs, which announces again every block
// device the kernel found before. No module depends on the command line:
// the watchdog drivers, which do, are not in the eager plan. Without a
// readable baked configuration nothing starts here; the config phase then
// reports it and boots with built-in defaults. A storage driver whose
// announcement (a module uevent) comes before the socket is open counts as
// live when its load returns (liveSet, moduleLoaded).
func (b *boot) startModules(path string, load kmod.Loader) {
	baked, err := bakedconf.Load(path)
	if err != nil {
		return
	}
	b.baked = baked
	b.loadEagerWith(load, newLiveSet(storageNames(baked.Modules)))
}
