// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"time"

	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/devspec"
)

// startDevices opens the uevent socket, loads the baked module plan unless
// the early-mounts phase started it (startModules), and replays the
// devices the kernel found before the socket was open, so that no disk is
// missed.
func (b *boot) startDevices() error {
	live := b.storageLive // made by startModules when the loads started in early-mounts
	if live == nil {
		live = newLiveSet(storageNames(b.baked.Modules))
	}
	w, err := devices.Start(devices.Options{OnPanic: func(r any) { b.panicked("device discovery", r) }, OnModule: live.mark})
	if err != nil {
		return fmt.Errorf("device discovery: %w", err)
	}
	b.dev = w
	b.devDeadline = time.Now().Add(b.cfg.Timeout)
	if b.mods == nil { // not started by the early-mounts phase (startModules)
		b.loadEager(live)
	}
	b.startWatchdog()
	if err := w.Coldplug(); err != nil {
		b.log.Warnf("coldplug: %v", err)
	}
	b.startFSPrefetch(b.cfg) // unless early-mounts started it
	b.logFSPrefetch()
	b.prefetchData()
	return nil
}

// waitFor resolves a DEVSPEC given explicitly (command line, baked
// defaults) to a device node, on any disk, waiting for it up to rd.timeout
// from the start of the boot. Default labels go through waitForDefault.
func (b *boot) waitFor(role, spec string) (string, error) {
	s, err := devspec.Parse(spec)
	if err != nil {
		return "", fmt.Errorf("%s device %q: %w", role, spec, err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), b.devDeadline)
	defer cancel()
	path, err := b.dev.WaitFor(ctx, s)
	if err != nil {
		return "", fmt.Errorf("%s device: %w (rd.timeout=%v)", role, err, b.cfg.Timeout)
	}
	b.log.Infof("%s device %s is %s", role, spec, path)
	if role == roleRoot {
		b.noteRootDisk(path)
	}
	return path, nil
}
