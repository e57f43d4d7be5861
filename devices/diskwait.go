// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/devspec"
)

// WaitSystemDisk reads the partition table of every known disk and chooses
// the system disk (ChooseSystemDisk). Without rootDisk it waits, up to
// ctx, while no disk is a candidate: disks are announced one by one. An
// ambiguous choice (two candidates, a label twice) is returned at once.
func (r *Registry) WaitSystemDisk(ctx context.Context, rootDisk, loaderPartUUID string) (SystemDisk, error) {
	defer r.lockUntil(ctx)()
	for {
		if j := r.claimProbe(devspec.OfPartLabel(LabelBootState), ""); j != nil {
			r.probeUnlocked(j)
			continue
		}
		if pending := r.tablesPending(); len(pending) > 0 {
			// Another waiter is reading a disk: decide with it, but not
			// past ctx (a disk whose reads never complete holds it for
			// ever).
			if werr := r.waitErr(ctx); werr != nil {
				return SystemDisk{}, fmt.Errorf("%w: the partition table of /dev/%s is still being read (a disk that does not answer?): %w", ErrNoSystemDisk, strings.Join(pending, ", /dev/"), werr)
			}
			r.cond.Wait()
			continue
		}
		sd, err := ChooseSystemDisk(r.diskParts(), rootDisk, loaderPartUUID)
		if !errors.Is(err, ErrNoSystemDisk) {
			return sd, err
		}
		if werr := r.waitErr(ctx); werr != nil {
			return sd, fmt.Errorf("%w (seen: %s)", err, seenList(r.seen(devspec.PartLabel)))
		}
		r.cond.Wait()
	}
}

// Recheck looks at the choice of disk again with every disk known now,
// reading the partition tables of disks announced since: the
// keel-labelled partitions of the other disks (Strays), and those holding
// the firmware's boot partition too (LoaderCopies). The error is the
// wait's when ctx ended it: a partition table another waiter was still
// reading (a disk that does not answer), named, its disk left out. The
// choice's own errors (a label twice on disk) were reported by the
// choice: nil.
func (r *Registry) Recheck(ctx context.Context, disk, loaderPartUUID string) (SystemDisk, error) {
	sd, err := r.WaitSystemDisk(ctx, disk, loaderPartUUID)
	switch {
	case err != nil && ctx.Err() != nil:
		r.mu.Lock()
		defer r.mu.Unlock()
		if pending := r.tablesPending(); len(pending) > 0 {
			return SystemDisk{Disk: disk}, fmt.Errorf("the partition table of /dev/%s is still being read (a disk that does not answer?): %w", strings.Join(pending, ", /dev/"), ctx.Err())
		}
		// The read ended meanwhile: every table known is read now.
		if sd, err := ChooseSystemDisk(r.diskParts(), disk, loaderPartUUID); err == nil {
			return sd, nil
		}
		return SystemDisk{Disk: disk}, nil
	case err != nil:
		return SystemDisk{Disk: disk}, nil
	}
	return sd, nil
}

// tablesPending lists, sorted, the disks whose partition table is being
// read. Callers hold mu.
func (r *Registry) tablesPending() []string {
	var out []string
	for _, d := range r.devs {
		if d.isDisk() && d.probe == probeRunning {
			out = append(out, d.DevName)
		}
	}
	sort.Strings(out)
	return out
}

// diskParts lists the partitions of every disk whose table was read, by
// the kernel name of their device. Callers hold mu.
func (r *Registry) diskParts() []DiskPart {
	var out []DiskPart
	for _, d := range r.sorted() {
		if !d.isDisk() {
			continue
		}
		for _, p := range d.parts {
			name := PartitionName(d.DevName, p.Index)
			if pd := r.partitionDevice(d.DevName, p.Index); pd != nil {
				name = pd.DevName
			}
			out = append(out, DiskPart{Disk: d.DevName, Part: name, Label: p.Name, PartUUID: p.UUID})
		}
	}
	return out
}

// DiskOf returns the kernel name of the disk holding the device at node
// (a path under the registry's /dev, or any block node, matched by device
// number): its parent for a partition, itself for a whole disk; "" when
// the device is unknown.
func (r *Registry) DiskOf(node string) string {
	var st unix.Stat_t
	statErr := unix.Stat(node, &st)
	r.mu.Lock()
	defer r.mu.Unlock()
	var d *device
	if name, err := filepath.Rel(r.opts.DevDir, node); err == nil && !strings.HasPrefix(name, "..") {
		d = r.devs[name]
	}
	if d == nil && statErr == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
		for _, c := range r.devs {
			if c.Major == unix.Major(st.Rdev) && c.Minor == unix.Minor(st.Rdev) {
				d = c
			}
		}
	}
	switch {
	case d == nil:
		return ""
	case d.parent != "":
		return d.parent
	}
	return d.DevName
}

// LoadSysfs records every block device sysfs lists as if its "add" uevent
// had arrived: a tool (slotctl) builds the registry the init builds from
// uevents, and resolves devices with the same code.
func (r *Registry) LoadSysfs() ([]SysBlock, error) {
	bs, err := ScanBlock(r.opts.SysDir)
	for _, b := range bs {
		r.Handle(b.Uevent)
	}
	return bs, err
}

// HasPartLabel reports whether the partition table of disk, once read,
// lists a partition labelled label: a default partition the system disk
// does not have is known missing at once, not waited for.
func (r *Registry) HasPartLabel(disk, label string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devs[disk]
	if d == nil {
		return false
	}
	for _, p := range d.parts {
		if p.Name == label {
			return true
		}
	}
	return false
}

// Settle waits, up to ctx, until every block device sysfs lists has been
// announced to the registry: after the storage drivers loaded, the disks
// they found are all known before the system disk is chosen.
func (r *Registry) Settle(ctx context.Context) error {
	names, err := BlockNames(r.opts.SysDir)
	if err != nil {
		return err
	}
	defer r.lockUntil(ctx)()
	for {
		var missing []string
		for _, n := range names {
			if r.devs[n] == nil {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if err := r.waitErr(ctx); err != nil {
			return fmt.Errorf("%s listed in sysfs but not announced: %w", strings.Join(missing, ", "), err)
		}
		r.cond.Wait()
	}
}
