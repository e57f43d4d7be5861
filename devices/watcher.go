// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/keel-boot/keel/devspec"
)

// Watcher ties the kernel edge to the registry: Start opens the uevent
// socket, the caller loads modules, then calls Coldplug and WaitFor.
type Watcher struct {
	opts     Options
	nl       *Netlink
	reg      *Registry
	consumed sync.WaitGroup
	rescan   atomic.Bool // a coldplug after an overflow is running
}

// Start opens the netlink socket and starts recording block devices. Call it
// before loading any module so no disk's uevent is missed.
func Start(o Options) (*Watcher, error) {
	w := &Watcher{opts: o.withDefaults(), reg: NewRegistry(o)}
	nl, err := OpenNetlink(NetlinkOptions{RecvBuffer: o.RecvBuffer, OnOverflow: w.onOverflow, Logf: o.Logf, OnPanic: o.OnPanic})
	if err != nil {
		return nil, err
	}
	w.nl = nl
	w.consumed.Add(1)
	go func() {
		defer w.consumed.Done()
		defer catchPanic(o.OnPanic)
		w.reg.Consume(nl.Events())
	}()
	return w, nil
}

// Coldplug makes the kernel re-announce the block devices that existed
// before Start (built-in drivers, devices probed while modules loaded).
func (w *Watcher) Coldplug() error { return Coldplug(w.opts.SysDir) }

// onOverflow runs when the kernel dropped uevents: announcing every device
// again is cheap and replaces the lost ones. It runs beside the reader, which
// must keep draining the socket while the kernel answers the coldplug, and
// never twice at once, so a slow rescan cannot feed a loop of overflows.
func (w *Watcher) onOverflow() {
	if w.opts.OnDevice != nil {
		w.opts.OnDevice("", "") // an add of a device may be among those lost
	}
	if !w.rescan.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer w.rescan.Store(false)
		defer catchPanic(w.opts.OnPanic)
		if err := w.Coldplug(); err != nil {
			logf(w.opts.Logf, "after uevent overflow: %v", err)
		}
	}()
}

// WaitFor waits for one device; see Registry.WaitFor.
func (w *Watcher) WaitFor(ctx context.Context, spec devspec.Spec) (string, error) {
	return w.reg.WaitFor(ctx, spec)
}

// WaitAll waits for several devices concurrently; see Registry.WaitAll.
func (w *Watcher) WaitAll(ctx context.Context, specs []devspec.Spec) ([]string, error) {
	return w.reg.WaitAll(ctx, specs)
}

// Devices lists the block devices seen so far, for the boot report.
func (w *Watcher) Devices() []Device { return w.reg.Devices() }

// Close closes the socket; pending waits fail with ErrSourceClosed.
func (w *Watcher) Close() error {
	err := w.nl.Close()
	w.consumed.Wait()
	return err
}

// WaitSystemDisk chooses the system disk; see Registry.WaitSystemDisk.
func (w *Watcher) WaitSystemDisk(ctx context.Context, rootDisk, loaderPartUUID string) (SystemDisk, error) {
	return w.reg.WaitSystemDisk(ctx, rootDisk, loaderPartUUID)
}

// WaitForOnDisk waits for a device on one disk; see Registry.WaitForOnDisk.
func (w *Watcher) WaitForOnDisk(ctx context.Context, spec devspec.Spec, disk string) (string, error) {
	return w.reg.WaitForOnDisk(ctx, spec, disk)
}

// HasPartLabel: see Registry.HasPartLabel.
func (w *Watcher) HasPartLabel(disk, label string) bool { return w.reg.HasPartLabel(disk, label) }

// DiskOf: see Registry.DiskOf.
func (w *Watcher) DiskOf(node string) string { return w.reg.DiskOf(node) }

// Recheck: see Registry.Recheck.
func (w *Watcher) Recheck(ctx context.Context, disk, loaderPartUUID string) (SystemDisk, error) {
	return w.reg.Recheck(ctx, disk, loaderPartUUID)
}

// Notes: see Registry.Notes.
func (w *Watcher) Notes() []string { return w.reg.Notes() }

// Settle: see Registry.Settle.
func (w *Watcher) Settle(ctx context.Context) error { return w.reg.Settle(ctx) }

// catchPanic, deferred in a goroutine, hands its panic to onPanic, or lets
// it go on when onPanic is nil.
func catchPanic(onPanic func(any)) {
	if onPanic == nil {
		return
	}
	if r := recover(); r != nil {
		onPanic(r)
	}
}

// Matches: see Registry.Matches.
func (w *Watcher) Matches(ctx context.Context, spec devspec.Spec) []string {
	return w.reg.Matches(ctx, spec)
}
