// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/mounts"
)

// earlyMounts is the early-mounts phase: the baked module plan starts
// loading first (startModules), then /proc is mounted and the file system
// the command line will need starts loading too (earlyFSPrefetch), then
// /sys, /dev (devtmpfs) and /run are mounted, then /dev/kmsg is opened
// for the log.
func (b *boot) earlyMounts() error {
	b.sysfs = newSysfsGate()
	defer b.sysfs.open() // if /sys could not be mounted: the storage drivers then all load
	b.startModules(bakedconf.Path, kmod.LoadFile)
	b.stack = mounts.NewStack()
	for _, m := range mounts.Early() {
		if err := b.stack.Do(m); err != nil {
			return fmt.Errorf("early mounts: %w", err)
		}
		switch m.Target {
		case "/proc":
			b.earlyFSPrefetch("/proc/cmdline")
		case "/sys":
			b.sysfs.open()
		}
	}
	b.log.openKmsg()
	return nil
}

// earlyFSPrefetch parses the command line at path over the baked defaults
// ahead of the config phase, for startFSPrefetch alone: problems are
// reported, and a locked image's refusals made, by the config phase, which
// parses it again. An unreadable command line starts nothing here.
func (b *boot) earlyFSPrefetch(path string) {
	if b.baked == nil {
		return
	}
	cmdline, err := os.ReadFile(path)
	if err != nil {
		return
	}
	b.cmdline = cmdline // the config phase parses it again, not reads it
	base, _ := kargs.FromBaked(b.baked.Cmdline, b.baked.Locked)
	cfg, _ := kargs.Parse(strings.TrimSpace(string(cmdline)), base, b.baked.Locked)
	b.startFSPrefetch(cfg)
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
