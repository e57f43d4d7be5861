// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/devspec"
	"github.com/keel-boot/keel/report"
)

// roleRoot is the role of root= in waitFor: in single and plain modes the
// disk that holds it is the system disk.
const roleRoot = "root"

// settleLimit bounds the wait for devices sysfs lists but whose uevent has
// not arrived yet (a hidden disk never announces itself).
const settleLimit = 2 * time.Second

// systemDisk is the boot's choice of the disk that every default-labelled
// keel partition comes from (docs/boot-sequence.md, "The system disk"),
// made once.
type systemDisk struct {
	done     bool
	disk     string // kernel name: vda
	err      error
	reported map[string]bool // strays already named, by partition
	loader   loaderPart      // LoaderDevicePartUUID (loader.go)
	// byLoader: the disk was chosen for holding the firmware's boot
	// partition, so a later disk with the slot labels is a stray, no
	// rival, unless the initramfs is locked (lockedRivals).
	byLoader bool
}

// errNoSuchPartition is why a default label is not waited for: the system
// disk's partition table, read whole, has no such partition.
var errNoSuchPartition = errors.New("no partition")

// waitForDefault resolves the default partition label of a keel partition
// (root-X, verity-X, bootstate, data) on the system disk only, choosing the
// system disk first if need be. A label the system disk's partition table
// does not list fails at once (errNoSuchPartition); one it lists is waited
// for up to rd.timeout.
func (b *boot) waitForDefault(role, label string) (string, error) {
	spec := devspec.OfPartLabel(label)
	disk, err := b.systemDisk()
	if err != nil {
		return "", fmt.Errorf("%s device %s: %w", role, spec, err)
	}
	if !b.dev.HasPartLabel(disk, label) {
		return "", fmt.Errorf("%s device %s: the system disk /dev/%s has %w labelled %s", role, spec, disk, errNoSuchPartition, label)
	}
	ctx, cancel := context.WithDeadline(context.Background(), b.devDeadline)
	defer cancel()
	path, err := b.dev.WaitForOnDisk(ctx, spec, disk)
	if err != nil {
		return "", fmt.Errorf("%s device on the system disk /dev/%s: %w (rd.timeout=%d)", role, disk, err, int(b.cfg.Timeout/time.Second))
	}
	b.log.Infof("%s device %s is %s (system disk /dev/%s)", role, spec, path, disk)
	return path, nil
}

// systemDisk returns the system disk, choosing it on first use: the disk
// holding root= in single and plain modes, else the one disk holding all the
// slot labels.
func (b *boot) systemDisk() (string, error) {
	if !b.sys.done && b.cfg.Root != "" {
		if _, err := b.waitFor(roleRoot, b.cfg.Root); err != nil {
			return "", err // not recorded: root= is waited for again, and fails by name
		}
	}
	if !b.sys.done && b.cfg.Root == "" {
		b.explicitSlotDisk()
	}
	if !b.sys.done {
		b.chooseSlotDisk()
	}
	b.diskNotes()
	return b.sys.disk, b.sys.err
}

// diskNotes tells the operator, loudly and in the report, what device
// discovery found wrong with the partition tables it read and what it did
// about it: a primary GPT damaged, partitions the kernel had not found and
// that were added from the table (docs/boot-sequence.md, "The system disk").
func (b *boot) diskNotes() {
	if b.dev == nil {
		return
	}
	for _, n := range b.dev.Notes() {
		b.warnLoud("%s", n)
	}
}

// chooseSlotDisk waits (up to rd.timeout) for a disk holding every slot
// label — on a UEFI boot, for the disk holding the firmware's boot
// partition (loaderPartUUID) —, then for the storage drivers to finish
// loading and for every block device sysfs lists to be announced, and
// decides with all the disks known then. A disk that appears later cannot
// be chosen; its keel labels are named as strays when the report is
// written.
func (b *boot) chooseSlotDisk() {
	ctx, cancel := context.WithDeadline(context.Background(), b.devDeadline)
	defer cancel()
	loader := b.loaderPartUUID()
	_, err := b.dev.WaitSystemDisk(ctx, "", loader)
	if errors.Is(err, devices.ErrLoaderDiskNotSeen) {
		b.warnLoud("the firmware loaded the kernel from the partition PARTUUID=%s (LoaderDevicePartUUID), which is on no disk this boot saw within rd.timeout=%d: the system disk is chosen by its partition labels alone", loader, int(b.cfg.Timeout/time.Second))
		loader = ""
		_, err = b.dev.WaitSystemDisk(ctx, "", "")
	}
	if !errors.Is(err, devices.ErrNoSystemDisk) {
		b.settleDevices(ctx, "system disk")
		var sd devices.SystemDisk
		sd, err = b.dev.WaitSystemDisk(ctx, "", loader)
		if err == nil {
			err = b.lockedRivals(sd, "")
		}
		if err == nil {
			b.sys.byLoader = sd.ByLoader
			b.setSystemDisk(sd)
			return
		}
	}
	b.sys.done, b.sys.err = true, err
	b.log.Errorf("%v", err)
}

// settleDevices waits, up to ctx, for the storage drivers to finish loading,
// then at most settleLimit for every block device sysfs lists to be
// announced: after it, the disks known are all the disks there are.
func (b *boot) settleDevices(ctx context.Context, what string) {
	b.modulesLoaded(ctx)
	settle, cancel := context.WithTimeout(ctx, settleLimit)
	defer cancel()
	if err := b.dev.Settle(settle); err != nil {
		b.log.Debugf("%s: %v", what, err)
	}
}

// explicitSlotDisk: when the builder or the command line names slot a's
// image device explicitly (root-a=, else root-b=), the disk holding it is
// the system disk, as root='s is in single mode; the slot partitions then
// need not carry the default labels for bootstate and data to be found.
func (b *boot) explicitSlotDisk() {
	for _, x := range []string{"a", "b"} {
		if spec := b.cfg.SlotRoot(x); spec != "" {
			if path, err := b.waitFor("root-"+x, spec); err == nil {
				b.noteDisk("root-"+x+"="+spec, path)
			}
			return
		}
	}
}

// noteRootDisk records, in single and plain modes, the disk holding the
// root= device as the system disk.
func (b *boot) noteRootDisk(path string) { b.noteDisk("root="+b.cfg.Root, path) }

// noteDisk records the disk holding path, which option named, as the
// system disk.
func (b *boot) noteDisk(option, path string) {
	if b.sys.done {
		return
	}
	disk := b.dev.DiskOf(path)
	if disk == "" {
		b.sys.done, b.sys.err = true, fmt.Errorf("no system disk: %s (%s) is on no disk this boot has seen", option, path)
		return
	}
	// Bounded like every device wait: another goroutine's read of a disk
	// that does not answer holds the choice (WaitSystemDisk names it).
	ctx, cancel := context.WithDeadline(context.Background(), b.devDeadline)
	defer cancel()
	sd, err := b.dev.WaitSystemDisk(ctx, disk, "")
	if err != nil {
		b.sys.done, b.sys.err = true, err
		return
	}
	b.setSystemDisk(sd)
}

func (b *boot) setSystemDisk(sd devices.SystemDisk) {
	b.sys.done, b.sys.disk = true, sd.Disk
	b.rep.SystemDisk = "/dev/" + sd.Disk
	if sd.ByLoader {
		b.log.Infof("system disk: /dev/%s (it holds PARTUUID=%s, the partition the firmware loaded the kernel from)", sd.Disk, b.sys.loader.uuid)
	} else {
		b.log.Infof("system disk: /dev/%s", sd.Disk)
	}
	b.strays(sd.Strays)
}

// strays names, once each, keel-labelled partitions on other disks: on the
// console at warning level and in the report. They are never used.
func (b *boot) strays(ps []devices.DiskPart) {
	if b.sys.reported == nil {
		b.sys.reported = map[string]bool{}
	}
	for _, p := range ps {
		if b.sys.reported[p.Part] {
			continue
		}
		b.sys.reported[p.Part] = true
		b.log.Warnf("ignoring /dev/%s (PARTLABEL=%s): it is on /dev/%s, not on the system disk /dev/%s", p.Part, devices.Shown(p.Label), p.Disk, b.sys.disk)
		b.rep.StrayPartitions = append(b.rep.StrayPartitions, report.Stray{
			Device: filepath.Join("/dev", p.Part), Label: p.Label, Disk: filepath.Join("/dev", p.Disk),
		})
	}
}

// reportStrays names the strays on disks announced after the choice; it
// runs when the report is written. In slot mode a later disk that holds
// every slot label is an error: the choice might have gone to the wrong
// disk (a stick announced before a slow system disk), so neither is booted.
func (b *boot) reportStrays() error {
	if b.dev == nil || b.sys.disk == "" {
		return nil
	}
	loader := ""
	if b.sys.byLoader {
		loader = b.sys.loader.uuid
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Timeout)
	defer cancel()
	sd, err := b.dev.Recheck(ctx, b.sys.disk, loader)
	if err != nil {
		// Not a refusal: the disks read before the choice are all this
		// boot's; a later one that does not answer is named and left out.
		b.log.Warnf("the disks announced after the choice of /dev/%s: %v; not checked for keel's labels", b.sys.disk, err)
		b.rep.Warn("the disks announced after the choice of /dev/%s: %v; not checked for keel's labels", b.sys.disk, err)
	}
	b.strays(sd.Strays)
	if b.cfg.Root != "" {
		return nil
	}
	if len(sd.LoaderCopies) > 0 {
		return fmt.Errorf("more than one system disk: /dev/%s was chosen for holding PARTUUID=%s, the partition the firmware loaded the kernel from (LoaderDevicePartUUID), then /dev/%s appeared holding it too: one is a copy of the other; remove the disk that is not this machine's", b.sys.disk, loader, strings.Join(sd.LoaderCopies, ", /dev/"))
	}
	if !b.sys.byLoader {
		if late := devices.LateCandidates(sd.Strays); len(late) > 0 {
			return fmt.Errorf("more than one system disk: /dev/%s was chosen, then /dev/%s appeared holding every slot label too; remove the disk that is not this machine's", b.sys.disk, strings.Join(late, ", /dev/"))
		}
	}
	sd.ByLoader = b.sys.byLoader
	return b.lockedRivals(sd, " (it appeared after the choice)")
}

// lockedRivals refuses, on a locked initramfs, a system disk that the
// firmware's boot partition chose while another disk holds every slot label
// too: the firmware can be made to boot a copy of the operator's own signed
// kernel from that other disk's ESP (a boot menu, a boot order that tries
// removable media first), and that disk's image, older, with its own
// rollback floor, would boot. Unlocked, the firmware's choice stands and
// the other disk's partitions are strays. when says when the rival was
// seen ("" at the choice).
func (b *boot) lockedRivals(sd devices.SystemDisk, when string) error {
	if !sd.ByLoader || b.baked == nil || !b.baked.Locked {
		return nil
	}
	rivals := devices.LateCandidates(sd.Strays)
	if len(rivals) == 0 {
		return nil
	}
	return fmt.Errorf("%w: /dev/%s holds PARTUUID=%s, the partition the firmware loaded the kernel from, and /dev/%s holds every slot label too%s: the initramfs is locked, and a firmware made to boot another disk's copy of the kernel would choose that disk; remove the disk that is not this machine's",
		devices.ErrTwoSystemDisks, sd.Disk, b.sys.loader.uuid, strings.Join(rivals, ", /dev/"), when)
}

// modulesLoaded waits, up to ctx, for the storage drivers of the baked
// plan (loadEager): they announce the disks they find while they load.
// The rest of the plan (squashfs, the device mapper, crypto) and the data
// partition's file system go on loading meanwhile.
func (b *boot) modulesLoaded(ctx context.Context) {
	if b.storageLoaded == nil {
		return
	}
	select {
	case <-b.storageLoaded:
	case <-ctx.Done():
	}
	// A module load's panic runs the emergency policy on its own goroutine
	// (kmod.Session.OnPanic) and its load never ends: this wait then ends
	// at rd.timeout, and the sequence must not go on.
	b.parkIfFailed()
}

// waitForOr resolves the keel partition labelled label: the DEVSPEC given
// for it explicitly (command line or baked, any disk) when there is one,
// else its default label on the system disk.
func (b *boot) waitForOr(label, explicit string) (string, error) {
	if explicit != "" {
		return b.waitFor(label, explicit)
	}
	return b.waitForDefault(label, label)
}
