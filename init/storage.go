// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/kmod"
)

// storageGate chooses the storage drivers of the plan to load by the
// devices present, as udev would (docs/boot-sequence.md, "Storage drivers
// by device"): a driver whose device aliases mkinitrd baked (every one on
// a bus the init reads: kmod.DeviceAliases) loads only when a device on
// those buses matches one of them; the others load at once. A generic
// image carries the drivers of NVMe, AHCI, virtio and SCSI; a machine has
// one or two of them, and the others' loads (nvme_core alone took half a
// second under emulation) competed with the ones it needs for the CPUs and
// the kernel's module lock (BENCHMARKS.md, "Seventeenth pass").
type storageGate struct {
	plan    []bakedconf.Module
	eager   []string           // storage drivers loaded whatever the devices
	gated   []bakedconf.Module // loaded for a device their aliases match
	started map[string]bool    // gated drivers whose load was started
}

// newStorageGate sorts the storage drivers of plan (the roots: those no
// other module of the plan depends on) into eager and gated. A driver of
// SCSI devices (sd_mod) is gated only when every storage driver is: an
// ungated driver's disks (usb_storage's, when an image adds it) are found
// by a bus the init does not read, in the background, and sd_mod then
// loads with it, as it always did, rather than on the uevent of each
// disk, which the boot stops matching at the report.
func newStorageGate(plan []bakedconf.Module) *storageGate {
	lib := map[string]bool{}
	for _, m := range plan {
		for _, d := range m.Deps {
			lib[d] = true
		}
	}
	var roots []bakedconf.Module
	allGated := true
	for _, m := range plan {
		if isStorageDriver(m.Path) && !lib[m.Name] {
			roots = append(roots, m)
			allGated = allGated && len(m.Aliases) > 0
		}
	}
	g := &storageGate{plan: plan, started: map[string]bool{}}
	for _, m := range roots {
		if len(m.Aliases) == 0 || (!allGated && onBus(m.Aliases, "scsi")) {
			g.eager = append(g.eager, m.Name)
		} else {
			g.gated = append(g.gated, m)
		}
	}
	return g
}

func onBus(aliases []string, bus string) bool {
	return slices.ContainsFunc(aliases, func(a string) bool { return strings.HasPrefix(a, bus+":") })
}

// gatedNames are the names of the gated drivers.
func (g *storageGate) gatedNames() []string { return names(g.gated) }

// match returns the gated drivers not started yet that one of modaliases
// (the devices present) matches, in plan order, and counts them started.
func (g *storageGate) match(modaliases []string) []string {
	var out []string
	for _, m := range g.gated {
		if g.started[m.Name] {
			continue
		}
		if slices.ContainsFunc(modaliases, func(a string) bool { return kmod.MatchModalias(m.Aliases, a) }) {
			g.started[m.Name] = true
			out = append(out, m.Name)
		}
	}
	return out
}

// unneeded are the storage modules (drivers and their dependencies) that
// neither an eager driver nor a started one needs: not loaded unless a
// device for them comes.
func (g *storageGate) unneeded() []string {
	roots := slices.Clone(g.eager)
	for name := range g.started {
		roots = append(roots, name)
	}
	need := map[string]bool{}
	for _, m := range kmod.Closure(g.plan, roots...) {
		need[m.Name] = true
	}
	var out []string
	for _, m := range storageDrivers(g.plan) {
		if !need[m.Name] {
			out = append(out, m.Name)
		}
	}
	return out
}

// virtioOfPCI is the modalias of the virtio device a virtio PCI device
// will bring once virtio_pci binds it (ok false for any other device):
// its type is the PCI device ID less 0x1040 for a modern device, the
// subsystem device ID for a transitional one (0x1000–0x103f), and its
// vendor the subsystem vendor ID, as virtio_pci sets them
// (vp_modern_probe, vp_legacy_probe). Matching it as if present starts the virtio driver
// (virtio_blk) beside virtio_pci, as before the choice, instead of after
// its load; the read of the bus once virtio_pci's load returned still
// decides for the devices it did not predict.
func virtioOfPCI(modalias string) (string, bool) {
	// pci:v%08Xd%08Xsv%08Xsd%08Xbc%02Xsc%02Xi%02X
	if len(modalias) < 42 || modalias[:5] != "pci:v" || modalias[13] != 'd' || modalias[22:24] != "sv" || modalias[32:34] != "sd" {
		return "", false
	}
	vendor, err1 := strconv.ParseUint(modalias[5:13], 16, 32)
	device, err2 := strconv.ParseUint(modalias[14:22], 16, 32)
	subvendor, err3 := strconv.ParseUint(modalias[24:32], 16, 32)
	subdevice, err4 := strconv.ParseUint(modalias[34:42], 16, 32)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || vendor != 0x1af4 {
		return "", false
	}
	var typ uint64
	switch {
	case device >= 0x1040 && device <= 0x107f:
		typ = device - 0x1040
	case device >= 0x1000 && device <= 0x103f:
		typ = subdevice
	default:
		return "", false
	}
	return fmt.Sprintf("virtio:d%08Xv%08X", typ, subvendor), true
}

// withPredicted adds to modaliases the virtio devices its virtio PCI
// devices will bring (virtioOfPCI). The caller's slice is not written to:
// its spare capacity may be another's.
func withPredicted(modaliases []string) []string {
	out := slices.Clip(modaliases)
	for _, a := range modaliases {
		if v, ok := virtioOfPCI(a); ok {
			out = append(out, v)
		}
	}
	return out
}

// busModaliases reads the modalias of every device on kmod.DeviceBuses
// under sys (/sys). A device without one (a SCSI host or target) or that
// went away is skipped; a bus that is not there (no module registered it)
// has no device.
func busModaliases(sys string) []string {
	var out []string
	for _, bus := range kmod.DeviceBuses {
		dir := filepath.Join(sys, "bus", bus, "devices")
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name(), "modalias"))
			if err == nil {
				out = append(out, strings.TrimSpace(string(b)))
			}
		}
	}
	return out
}

// loadStorage loads the storage drivers of g's plan, and closes loaded
// once every load it started returned and the devices then present ask
// for no other driver: the eager drivers at once, each gated driver as
// soon as a device matches it. The buses are read again each time a load
// returns (virtio_pci's brings the virtio devices, an adapter's its SCSI
// disks), and each device the kernel adds on them is matched as its
// uevent comes (storageEvents). That goes on after loaded is closed,
// until the boot stops it (stopStorage, when it waits for its background
// loads before the report and the switch): a SCSI disk a Fibre Channel
// adapter finds seconds after its load returned, or a controller that
// appears late on PCI, still gets its driver, as it did when every driver
// loaded. When no device matched a gated driver at all and no storage
// driver loads at once (sysfs could not be read), every gated driver
// loads, as it did before the choice: a machine must never be left
// without the driver of its disk. Stopped for a failed boot (the
// emergency), every gated driver not loaded yet starts loading, so that
// the rescue shell has them all, as before the choice.
func (b *boot) loadStorage(g *storageGate, live *liveSet, loaded chan<- struct{}) {
	if len(g.gated) == 0 {
		b.loadInBackground(storageDrivers(g.plan))
		close(loaded)
		return
	}
	ended := make(chan struct{}, len(g.gated)+1)
	running := 0
	start := func(why string, roots ...string) {
		running++
		b.log.Debugf("storage: loading %v (%s)", roots, why)
		mods := kmod.Closure(g.plan, roots...)
		b.goSafeThen("the background module loader", func() { b.loadInBackground(mods) }, func() { ended <- struct{}{} })
	}
	if len(g.eager) > 0 {
		start("no device aliases", g.eager...)
	}
	b.waitSysfs()
	ev := b.storageEv
	stop := ev.stopped()
	settled, stopping, readAll := false, false, true
	for {
		var devices []string
		if readAll {
			devices = b.modaliases()
		} else {
			devices = ev.take()
		}
		if !stopping {
			for _, name := range g.match(withPredicted(devices)) {
				start("a device present", name)
			}
			for _, name := range g.unneeded() {
				live.mark(name) // the rest of the plan need not wait for it
			}
		}
		if running == 0 {
			if !settled {
				settled = true
				b.loadAllIfNoneMatched(g)
				close(loaded) // not deferred: a panic must not release the wait (goSafeThen)
			}
			if stopping {
				return
			}
		}
		select {
		case <-ended:
			running--
			readAll = true
		case <-ev.wake:
			readAll = ev.takeRescan()
		case <-stop:
			stopping = true
			if ev.emergency.Load() {
				if rest := g.unstarted(); len(rest) > 0 {
					start("the boot failed: every driver, for the rescue shell", rest...)
				}
			}
			stop = nil // the select must not spin on it
		}
	}
}

// unstarted are the gated drivers whose load was not started, counted
// started now.
func (g *storageGate) unstarted() []string {
	var out []string
	for _, m := range g.gated {
		if !g.started[m.Name] {
			g.started[m.Name] = true
			out = append(out, m.Name)
		}
	}
	return out
}

// loadAllIfNoneMatched loads every gated driver of g when no device
// matched any and no storage driver loads at once, and says why in the
// report: the init could not read the machine's devices. With a driver
// loaded at once (hv_storvsc, xen_blkfront: buses the init does not
// read), a machine whose disks are all there is one.
func (b *boot) loadAllIfNoneMatched(g *storageGate) {
	if len(g.started) > 0 || len(g.eager) > 0 {
		return
	}
	all := g.unstarted()
	b.bgMu.Lock()
	b.bgErrs = append(b.bgErrs, fmt.Errorf("no device on the %s buses matched a storage driver of the image (%s): loading them all",
		strings.Join(kmod.DeviceBuses, ", "), strings.Join(all, ", ")))
	b.bgMu.Unlock()
	b.loadInBackground(kmod.Closure(g.plan, all...))
}

// storageEvents carries to loadStorage what the uevent reader sees: the
// modaliases of the devices added on the buses it reads, or that uevents
// were lost (the socket overflowed; a full read is then due), and the
// boot's stop. Its methods never block the reader, and are safe on a nil
// *storageEvents (no plan loading).
type storageEvents struct {
	wake      chan struct{} // one pending wake at most
	stop      chan struct{}
	stopOnce  sync.Once
	emergency atomic.Bool // stopped by a failed boot

	mu     sync.Mutex
	added  []string // modaliases not yet matched
	rescan bool     // a full read is due
	ended  bool     // stopped: nothing more is kept
}

// maxPendingDevices bounds the modaliases kept between two wakes: past
// it, a full read of the buses replaces them (a SAN announcing
// thousands of disks at once).
const maxPendingDevices = 1024

func newStorageEvents() *storageEvents {
	return &storageEvents{wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// deviceAdded is told (devices.Options.OnDevice) of each device the
// kernel adds with a MODALIAS, and of lost uevents (subsystem ""). One on
// the buses the choice reads is matched as it comes: a SATA disk's SCSI
// device, announced while AHCI still probes its other ports, has sd_mod
// load beside that probing instead of after it.
func (e *storageEvents) deviceAdded(subsystem, modalias string) {
	if e == nil || (subsystem != "" && !slices.Contains(kmod.DeviceBuses, subsystem)) {
		return
	}
	e.mu.Lock()
	switch {
	case e.ended:
		e.mu.Unlock()
		return
	case subsystem == "" || len(e.added) >= maxPendingDevices:
		e.rescan, e.added = true, nil
	default:
		e.added = append(e.added, modalias)
	}
	e.mu.Unlock()
	e.poke()
}

// readAll asks for a full read of the buses (the socket just opened: a
// device added before it was is read then).
func (e *storageEvents) readAll() { e.deviceAdded("", "") }

func (e *storageEvents) poke() {
	select {
	case e.wake <- struct{}{}:
	default: // a wake is pending already
	}
}

// take returns the modaliases added since the last call.
func (e *storageEvents) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.added
	e.added = nil
	return out
}

// takeRescan reports whether a full read is due, and clears it.
func (e *storageEvents) takeRescan() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.rescan
	e.rescan = false
	return r
}

func (e *storageEvents) stopped() <-chan struct{} { return e.stop }

// end stops loadStorage's choice; emergency has it start every gated
// driver not loaded yet first.
func (e *storageEvents) end(emergency bool) {
	if e == nil {
		return
	}
	if emergency {
		e.emergency.Store(true)
	}
	e.stopOnce.Do(func() {
		e.mu.Lock()
		e.ended, e.added = true, nil
		e.mu.Unlock()
		close(e.stop)
	})
}

// stopStorage ends loadStorage's choice: the boot is about to wait for
// its background loads (waitBackgroundInto), which would otherwise wait
// for ever. Loads in flight end as they do.
func (b *boot) stopStorage() { b.storageEv.end(false) }

// storageForRescue is stopStorage for a failed boot: every storage
// driver not loaded yet starts loading, for the rescue shell.
func (b *boot) storageForRescue() { b.storageEv.end(true) }

// modaliases reads the devices present (busModaliases of /sys, or the
// test's source).
func (b *boot) modaliases() []string {
	if b.readModaliases != nil {
		return b.readModaliases()
	}
	return busModaliases("/sys")
}

// sysfsGate is closed once /sys is mounted (or the early mounts ended
// without it): the storage drivers of the plan start loading before, in
// the early-mounts phase, and the gated ones wait for it.
type sysfsGate struct {
	once sync.Once
	ch   chan struct{}
}

func newSysfsGate() *sysfsGate { return &sysfsGate{ch: make(chan struct{})} }

func (s *sysfsGate) open() {
	if s != nil {
		s.once.Do(func() { close(s.ch) })
	}
}

// waitSysfs waits for /sys, when the early-mounts phase is mounting it.
func (b *boot) waitSysfs() {
	if b.sysfs != nil {
		<-b.sysfs.ch
	}
}
