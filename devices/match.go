// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"strconv"
	"strings"

	"github.com/keel-boot/keel/devspec"
)

// Device describes a known block device, for the boot report.
type Device struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	Major    uint32 `json:"major"`
	Minor    uint32 `json:"minor"`
	Type     string `json:"type"`                // disk or partition
	Parent   string `json:"parent,omitempty"`    // disk of a partition
	PartN    int    `json:"partn,omitempty"`     // partition number
	PartName string `json:"partlabel,omitempty"` // from the parent's GPT once read, else the uevent's PARTNAME
	PartUUID string `json:"partuuid,omitempty"`  // from the parent's GPT or MBR, once read
	FSType   string `json:"fstype,omitempty"`    // once probed
	UUID     string `json:"uuid,omitempty"`
	Label    string `json:"label,omitempty"`
}

// Devices returns the known block devices in order of appearance.
func (r *Registry) Devices() []Device {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Device
	for _, d := range r.sorted() {
		out = append(out, Device{
			Name: d.DevName, Path: r.nodePath(d.DevName), Major: d.Major, Minor: d.Minor,
			Type: d.DevType, Parent: d.parent, PartN: d.PartN, PartName: r.label(d),
			PartUUID: r.partUUID(d), FSType: d.fs.Type, UUID: d.fs.UUID, Label: d.fs.Label,
		})
	}
	return out
}

// match returns the device node satisfying spec, if one is known, on disk
// (the disk itself or one of its partitions) unless disk is "". Callers
// hold mu. Ties go to the device seen first, so the answer is stable: a
// device seen before the first match that another waiter is still reading,
// and that may match once read (mayMatchOnceRead), is waited for.
func (r *Registry) match(spec devspec.Spec, disk string) (string, bool) {
	if spec.Kind == devspec.Path {
		d := r.devs[strings.TrimPrefix(spec.Value, "/dev/")]
		if d == nil || !onDisk(d, disk) {
			return "", false
		}
		return r.nodePath(d.DevName), true
	}
	named := r.namedParents(spec, disk)
	for _, d := range r.sorted() {
		if m := r.matchDevice(spec, d); m != nil && onDisk(m, disk) {
			return r.nodePath(m.DevName), true
		}
		if mayMatchOnceRead(spec, d, disk, named) {
			return "", false
		}
	}
	return "", false
}

// mayMatchOnceRead reports whether d, on disk, is being read and may match
// spec once it is: any device for a UUID or LABEL, a disk for a PARTUUID,
// and for a PARTLABEL only a disk holding a partition the kernel names
// with the label (named: namedParents), so that a disk elsewhere whose
// reads stall does not hold the wait (claimProbe).
func mayMatchOnceRead(spec devspec.Spec, d *device, disk string, named map[string]bool) bool {
	if d.probe != probeRunning || !specNeedsProbe(spec, d) || !onDisk(d, disk) {
		return false
	}
	return spec.Kind != devspec.PartLabel || named[d.DevName]
}

func onDisk(d *device, disk string) bool {
	return disk == "" || d.DevName == disk || d.parent == disk
}

// matchDevice returns the device d yields for spec: d itself for filesystem
// and PARTNAME matches, one of d's partitions when d's partition table matches.
func (r *Registry) matchDevice(spec devspec.Spec, d *device) *device {
	switch spec.Kind {
	case devspec.UUID:
		if d.fs.UUID != "" && strings.EqualFold(d.fs.UUID, spec.Value) {
			return d
		}
	case devspec.Label:
		if d.fs.Label != "" && d.fs.Label == spec.Value {
			return d
		}
	case devspec.PartLabel:
		if d.DevType == "partition" {
			if name, settled := r.partLabel(d); settled && name == spec.Value {
				return d
			}
		}
		return r.tableMatch(d, func(p Partition) bool { return p.Name == spec.Value })
	case devspec.PartUUID:
		return r.tableMatch(d, func(p Partition) bool { return p.UUID == spec.Value })
	}
	return nil
}

// tableMatch returns the partition device of disk d whose partition table entry satisfies
// ok, once the kernel has announced that partition.
func (r *Registry) tableMatch(d *device, ok func(Partition) bool) *device {
	for _, p := range d.parts {
		if ok(p) {
			if pd := r.partitionDevice(d.DevName, p.Index); pd != nil {
				return pd
			}
		}
	}
	return nil
}

// partitionDevice finds partition n of disk: by the uevent's parent and
// PARTN, else by the kernel's naming rule.
func (r *Registry) partitionDevice(disk string, n int) *device {
	for _, d := range r.devs {
		if d.parent == disk && d.PartN == n {
			return d
		}
	}
	return r.devs[PartitionName(disk, n)]
}

// tableEntry returns partition d's entry in its disk's partition table,
// once read. Callers hold mu.
func (r *Registry) tableEntry(d *device) (Partition, bool) {
	disk := r.devs[d.parent]
	if disk == nil {
		return Partition{}, false
	}
	for _, p := range disk.parts {
		if p.Index == d.PartN {
			return p, true
		}
	}
	return Partition{}, false
}

// partUUID returns the PARTUUID of partition d from its disk's partition table, if read.
func (r *Registry) partUUID(d *device) string {
	p, _ := r.tableEntry(d)
	return p.UUID
}

// partLabel is partition d's name (PARTLABEL), and whether it is settled:
// the entry of its disk's GPT, once keel has read it; else the kernel's
// PARTNAME, settled once the disk was read and its table is no GPT that
// lists d (an MBR the kernel named from blkdevparts=, a table keel cannot
// read or refuses), or when d's disk is unknown. The kernel keeps only the
// low byte of each UTF-16 unit of a GPT name, so that "Ťata" (U+0164 is
// 'd' plus 0x100) is "data" to it: while the disk is being read, its name
// is not taken. Callers hold mu.
func (r *Registry) partLabel(d *device) (string, bool) {
	disk := r.devs[d.parent]
	if disk == nil {
		return d.PartName, true
	}
	if p, ok := r.tableEntry(d); ok && disk.gpt {
		return p.Name, true
	}
	return d.PartName, disk.probe == probeDone
}

// label is partLabel's name, settled or not, for what is shown.
func (r *Registry) label(d *device) string {
	name, _ := r.partLabel(d)
	return name
}

// PartitionName is the kernel's name for partition n of disk: vda1, but
// nvme0n1p1 and mmcblk0p1 when the disk's name ends in a digit.
func PartitionName(disk string, n int) string {
	if disk != "" && disk[len(disk)-1] >= '0' && disk[len(disk)-1] <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}
