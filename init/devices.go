// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
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
	if b.storageEv == nil { // the uevent reader tells it of devices from its start
		b.storageEv = newStorageEvents()
	}
	w, err := devices.Start(devices.Options{
		OnPanic:       func(r any) { b.panicked("device discovery", r) },
		OnModule:      live.mark,
		OnDevice:      b.storageEv.deviceAdded,
		AddPartitions: true, // a disk whose primary GPT is damaged still boots (diskNotes)
	})
	if err != nil {
		return fmt.Errorf("device discovery: %w", err)
	}
	b.dev = w
	b.storageEv.readAll() // a device added before the socket was open is read now
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
		return "", fmt.Errorf("%s device: %w (rd.timeout=%d)", role, err, int(b.cfg.Timeout/time.Second))
	}
	if b.baked.Locked && s.Kind != devspec.Path {
		if err := b.uniqueDevice(ctx, role, s); err != nil {
			return "", err
		}
	}
	b.log.Infof("%s device %s is %s", role, spec, path)
	if role == roleRoot {
		b.noteRootDisk(path)
	}
	return path, nil
}

// uniqueDevice checks, on a locked initramfs, that an explicit DEVSPEC
// (baked: a locked command line cannot name devices) matches one device
// once every disk is known: a UUID, LABEL or PARTUUID is no secret, and a
// second disk carrying a copy of it must not win by being announced first
// (docs/security.md). The spec is checked again when the report is written
// (reportAmbiguous), against a disk announced later.
func (b *boot) uniqueDevice(ctx context.Context, role string, s devspec.Spec) error {
	b.settleDevices(ctx, role+" device")
	if err := ambiguous(role, s, b.dev.Matches(ctx, s)); err != nil {
		return err // not used: nothing to check again
	}
	b.explicitDevs = append(b.explicitDevs, explicitDev{role, s})
	return nil
}

// explicitDev is an explicit DEVSPEC a locked boot used, for the check
// when the report is written.
type explicitDev struct {
	role string
	spec devspec.Spec
}

// ambiguousError is ambiguous's error, told apart by errors.As.
type ambiguousError struct{ msg string }

func (e *ambiguousError) Error() string { return e.msg }

// ambiguous is the error for an explicit DEVSPEC that matches more than
// one device (an *ambiguousError).
// The device-mapper devices keel made itself (a verity or LUKS mapping
// shows the file system of the partition under it) do not count.
func ambiguous(role string, s devspec.Spec, all []string) error {
	var matches []string
	for _, m := range all {
		if !strings.HasPrefix(filepath.Base(m), "dm-") {
			matches = append(matches, m)
		}
	}
	if len(matches) <= 1 {
		return nil
	}
	slices.Sort(matches)
	return &ambiguousError{fmt.Sprintf("%s device %s: %d devices match (%s): the initramfs is locked and will not guess which one is this machine's; remove the disk that is not", role, s, len(matches), strings.Join(matches, ", "))}
}

// reportAmbiguous checks again, before the switch, that each explicit
// DEVSPEC a locked boot used still matches one device: a copy announced
// after the check stops the boot (the emergency policy: a reboot).
func (b *boot) reportAmbiguous() error {
	for _, e := range b.explicitDevs {
		ctx, cancel := context.WithTimeout(context.Background(), settleLimit)
		err := ambiguous(e.role, e.spec, b.dev.Matches(ctx, e.spec))
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}
