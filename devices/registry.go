// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// Options configure a Registry or a Watcher; the zero value means the real
// /dev and /sys and no mknod (devtmpfs makes the nodes).
type Options struct {
	DevDir     string               // where device nodes are; "" means /dev
	SysDir     string               // where sysfs is mounted; "" means /sys
	Mknod      bool                 // create /dev/NAME from MAJOR:MINOR when missing
	RecvBuffer int                  // netlink receive buffer; 0 means DefaultRecvBuffer
	Logf       func(string, ...any) // diagnostics (dropped messages, probe errors); nil discards
	// OnPanic receives a panic of the Watcher's goroutines (the uevent
	// reader, the registry consumer, the rescan); nil lets it go on.
	OnPanic func(any)
	// OnModule, when set, is called with a module's name when the kernel
	// announces it (ModuleAdded): its init has returned, while its
	// asynchronous probing (a SATA port's link) may still run.
	OnModule func(name string)
	// OnDevice, when set, is called with the subsystem and the MODALIAS
	// of each device the kernel adds with one (a PCI, virtio or SCSI
	// device): the init loads a driver for it (a SATA disk's SCSI device,
	// announced while AHCI still probes its other ports). It is called
	// with "", "" when uevents were lost (the socket overflowed): a
	// device may have been added unseen.
	OnDevice func(subsystem, modalias string)
	// AddPartitions has the partitions of a GPT the kernel did not read
	// (a damaged primary, read from its backup; a missing protective MBR)
	// added with BLKPG when the disk's table is read (the init sets it):
	// the kernel reads only the primary GPT unless booted with "gpt".
	// What was found and done is kept for Notes.
	AddPartitions bool
}

func (o Options) withDefaults() Options {
	if o.DevDir == "" {
		o.DevDir = "/dev"
	}
	if o.SysDir == "" {
		o.SysDir = "/sys"
	}
	return o
}

// probeState tracks the lazy, once-only read of a device's partition table
// and superblock.
type probeState int

const (
	probeNone probeState = iota
	probeRunning
	probeDone
)

// device is a registry entry: what the uevents said, plus the probe results.
type device struct {
	Uevent
	parent string
	seq    uint64 // order of first appearance, for stable reports
	gen    uint64 // new on change (Registry.gens); a probe of another gen is discarded
	probe  probeState
	fs     FS
	fsErr  error
	parts  []Partition // the disk's partition table, GPT or MBR
	gpt    bool        // parts come from a GPT: their names are the PARTLABELs
	ptErr  error
}

func (d *device) isDisk() bool { return d.DevType == "disk" }

// Registry is the set of block devices announced by uevents. All methods are
// safe for concurrent use; waiters block on a condition variable that every
// uevent and every finished probe broadcasts.
type Registry struct {
	opts   Options
	mu     sync.Mutex
	cond   *sync.Cond
	devs   map[string]*device
	seq    uint64
	gens   uint64 // the last device.gen given: unique across names and removals
	closed bool
	notes  []string        // Notes not yet taken: damaged tables, partitions added
	noted  map[string]bool // every note ever kept, so each is said once
}

// NewRegistry returns an empty registry.
func NewRegistry(o Options) *Registry {
	r := &Registry{opts: o.withDefaults(), devs: map[string]*device{}}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// Notes returns, once each (and at most maxNotes in all), what the operator must be told about the disks
// read so far: a primary GPT found damaged, partitions the kernel did not
// find that were added (Options.AddPartitions) or could not be.
func (r *Registry) Notes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.notes
	r.notes = nil
	return n
}

// Consume feeds every uevent of ch to Handle until ch is closed; waiters
// then fail instead of waiting for devices that can no longer be announced.
func (r *Registry) Consume(ch <-chan Uevent) {
	for ev := range ch {
		r.Handle(ev)
	}
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.mu.Unlock()
}

// Handle records one uevent. A module's is passed to OnModule, another
// device's with a MODALIAS to OnDevice; other non-block uevents are
// ignored.
func (r *Registry) Handle(ev Uevent) {
	if name, ok := ModuleAdded(ev); ok && r.opts.OnModule != nil {
		r.opts.OnModule(name)
	}
	if deviceAdded(ev) && r.opts.OnDevice != nil {
		r.opts.OnDevice(ev.Subsystem, ev.Env["MODALIAS"])
	}
	if ev.Subsystem != "block" || ev.DevName == "" {
		return
	}
	if ev.Action == "add" && r.opts.Mknod {
		if err := r.ensureNode(ev.DevName, ev.Major, ev.Minor); err != nil {
			logf(r.opts.Logf, "%v", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.cond.Broadcast()
	if old := ev.Env["DEVPATH_OLD"]; ev.Action == "move" && old != "" {
		r.removeByDevPath(old)
	}
	if ev.Action == "remove" {
		delete(r.devs, ev.DevName)
		return
	}
	r.upsert(ev)
}

func (r *Registry) upsert(ev Uevent) {
	d, ok := r.devs[ev.DevName]
	if !ok {
		r.seq++
		r.gens++
		// A gen of its own: a probe of a removed device of the same name
		// still running must not be stored for this one.
		d = &device{seq: r.seq, gen: r.gens}
		r.devs[ev.DevName] = d
	}
	// Anything but a repeated add (coldplug re-announcing a device we know)
	// may mean new contents: a rewritten partition table, a fresh mkfs.
	if ok && (ev.Action != "add" || ev.Major != d.Major || ev.Minor != d.Minor) {
		r.gens++
		d.gen = r.gens
		d.probe, d.fs, d.fsErr, d.parts, d.gpt, d.ptErr = probeNone, FS{}, nil, nil, false, nil
	}
	d.Uevent = ev
	d.parent = ev.Parent()
}

func (r *Registry) removeByDevPath(devpath string) {
	for name, d := range r.devs {
		if d.DevPath == devpath {
			delete(r.devs, name)
		}
	}
}

// ensureNode creates dev/NAME as a block node when it is missing; devtmpfs
// normally has made it before the uevent is sent.
func (r *Registry) ensureNode(name string, major, minor uint32) error {
	p := r.nodePath(name)
	if _, err := os.Lstat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("mknod %s: %w", p, err)
	}
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("mknod %s (%d:%d): %w", p, major, minor, err)
	}
	return nil
}

func (r *Registry) nodePath(name string) string { return filepath.Join(r.opts.DevDir, name) }

// sorted returns the devices in order of first appearance. Callers hold mu.
func (r *Registry) sorted() []*device {
	ds := make([]*device, 0, len(r.devs))
	for _, d := range r.devs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].seq < ds[j].seq })
	return ds
}
