// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/devspec"
)

// probeJob is a device claimed for probing, identified by name and gen so a
// result that raced with a change uevent is dropped.
type probeJob struct {
	name, path string
	gen        uint64
	disk       bool
	fs         FS
	fsErr      error
	parts      []Partition
	gpt        bool
	ptErr      error
	sysDir     string // set when missing partitions are to be added (Options.AddPartitions)
	notes      []string
}

// claimProbe marks the first device spec needs probed and not yet probed
// as running and returns its job, nil when there is none: on disk and its
// partitions only, unless disk is "" (a wait restricted to the system disk
// must not read a stick plugged in later, whose reads may never end).
// Callers hold mu. Partition tables live on whole disks only, so
// PARTUUID/PARTLABEL specs read disks (GPT or MBR); UUID/LABEL specs read
// everything.
//
// One device at a time: a device is marked running only while a waiter
// reads it, so a disk whose reads never end holds its own reader and
// itself, not the devices another waiter would have claimed with it and
// never reached (found in review). For a PARTLABEL, the disks holding a
// partition the kernel names so (namedParents) are read first, and no
// other disk until they are: a disk elsewhere whose reads stall must not
// hold a wait for a label the kernel already found, now that the name is
// taken from the table (partLabel).
func (r *Registry) claimProbe(spec devspec.Spec, disk string) *probeJob {
	want := func(d *device) bool { return specNeedsProbe(spec, d) }
	if named := r.namedParents(spec, disk); named != nil {
		want = func(d *device) bool { return named[d.DevName] }
	}
	for _, d := range r.sorted() {
		if d.probe != probeNone || !want(d) || !onDisk(d, disk) {
			continue
		}
		d.probe = probeRunning
		j := &probeJob{name: d.DevName, path: r.nodePath(d.DevName), gen: d.gen, disk: d.isDisk()}
		if r.opts.AddPartitions {
			j.sysDir = r.opts.SysDir
		}
		return j
	}
	return nil
}

// namedParents are, for a PARTLABEL, the disks not read yet (or being
// read) holding a partition on disk (any, for "") whose kernel name
// (PARTNAME) is spec's label; nil when there are none. Callers hold mu.
func (r *Registry) namedParents(spec devspec.Spec, disk string) map[string]bool {
	if spec.Kind != devspec.PartLabel {
		return nil
	}
	var named map[string]bool
	for _, d := range r.devs {
		if d.DevType != "partition" || d.PartName != spec.Value || !onDisk(d, disk) {
			continue
		}
		if p := r.devs[d.parent]; p != nil && p.probe != probeDone {
			if named == nil {
				named = map[string]bool{}
			}
			named[p.DevName] = true
		}
	}
	return named
}

func specNeedsProbe(spec devspec.Spec, d *device) bool {
	switch spec.Kind {
	case devspec.PartUUID, devspec.PartLabel:
		return d.isDisk()
	case devspec.UUID, devspec.Label:
		return true
	}
	return false
}

// storeProbe records a finished job when its device is unchanged, and
// wakes the waiters. Callers hold mu.
func (r *Registry) storeProbe(j *probeJob) {
	defer r.cond.Broadcast()
	r.note(j.notes) // said even when the device changed meanwhile: it happened
	d := r.devs[j.name]
	if d == nil || d.gen != j.gen {
		return // removed or changed meanwhile: it will be probed again
	}
	d.probe, d.fs, d.fsErr, d.parts, d.gpt, d.ptErr = probeDone, j.fs, j.fsErr, j.parts, j.gpt, j.ptErr
	if j.fsErr != nil && !errors.Is(j.fsErr, ErrUnknownFS) {
		logf(r.opts.Logf, "%v", j.fsErr)
	}
	if j.ptErr != nil && !errors.Is(j.ptErr, ErrNoGPT) && !errors.Is(j.ptErr, ErrNoMBR) {
		logf(r.opts.Logf, "%v", j.ptErr)
	}
}

// maxNotes bounds what Notes keeps: a device that keeps changing (a
// gadget toggling its medium) is read again each time.
const maxNotes = 32

// note keeps each of notes once, up to maxNotes in all. Callers hold mu.
func (r *Registry) note(notes []string) {
	for _, n := range notes {
		if r.noted[n] || len(r.noted) >= maxNotes {
			continue
		}
		if r.noted == nil {
			r.noted = map[string]bool{}
		}
		r.noted[n] = true
		r.notes = append(r.notes, n)
	}
}

// safeRun is run, a panic in it recorded as the device's read error.
func (j *probeJob) safeRun() {
	defer func() {
		if v := recover(); v != nil {
			err := fmt.Errorf("%s: reading it panicked: %v (a keel bug: please report it)", j.path, v)
			j.parts, j.fs, j.ptErr, j.fsErr = nil, FS{}, err, err
			j.notes = append(j.notes, err.Error())
		}
	}()
	runProbe(j)
}

// runProbe reads a device for a probe job; a variable for tests.
var runProbe = (*probeJob).run

// run reads the device: the partition table of a whole disk (GPT, else
// MBR), else its superblock. A disk with a partition table is not probed
// for a filesystem: the first sectors are the table, and a match there
// would be a leftover.
func (j *probeJob) run() {
	// O_NONBLOCK lets an empty CD drive open (and fail reads) instead of
	// failing with ENOMEDIUM at open time or blocking on the tray.
	f, err := os.OpenFile(j.path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		j.fsErr, j.ptErr = err, err
		return
	}
	defer f.Close()
	if j.disk {
		var t GPT
		t, j.ptErr = readTable(f)
		j.parts, j.gpt = t.Parts, t.Sector != 0 // an MBR's come with Sector 0
		if j.ptErr != nil {
			j.ptErr = fmt.Errorf("%s: %w", j.path, j.ptErr)
		}
		j.notes = append(j.notes, j.repair(f, t)...)
		if len(j.parts) > 0 {
			return // a damaged EBR chain keeps the partitions read before it
		}
	}
	if j.fs, j.fsErr = Probe(f); j.fsErr != nil {
		j.fsErr = fmt.Errorf("%s: %w", j.path, j.fsErr)
	}
}

// ReadPartitionTable reads a disk's GPT or, when it has none, its MBR. The
// error wraps ErrNoMBR when the disk has neither (it may hold a file system).
func ReadPartitionTable(r io.ReaderAt) ([]Partition, error) {
	t, err := readTable(r)
	return t.Parts, err
}

// readTable is ReadPartitionTable keeping what ReadDiskGPT says; an MBR's
// partitions come with Sector 0 (not a GPT).
func readTable(r io.ReaderAt) (GPT, error) {
	t, err := ReadDiskGPT(r)
	if !errors.Is(err, ErrNoGPT) {
		return t, err
	}
	parts, err := ReadMBR(r)
	return GPT{Parts: parts}, err
}
