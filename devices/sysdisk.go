// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// The partition labels of keel's disk layout (docs/formats.md): the slots'
// image and verity partitions, the boot state and the data partition.
const (
	LabelBootState = "bootstate"
	LabelData      = "data"
)

// SlotLabels are the labels a disk must hold, all of them, to be a
// candidate system disk.
func SlotLabels() []string { return []string{"root-a", "verity-a", "root-b", "verity-b"} }

// IsKeelLabel reports whether label is one of keel's default partition labels.
func IsKeelLabel(label string) bool {
	return label == LabelBootState || label == LabelData || isSlotLabel(label)
}

func isSlotLabel(label string) bool {
	for _, l := range SlotLabels() {
		if l == label {
			return true
		}
	}
	return false
}

// Errors of ChooseSystemDisk. ErrLoaderDiskNotSeen comes wrapped with
// ErrNoSystemDisk: the disk to choose may still be announced.
var (
	ErrNoSystemDisk      = errors.New("no system disk")
	ErrTwoSystemDisks    = errors.New("more than one system disk")
	ErrLoaderDiskNotSeen = errors.New("the firmware's boot partition is on no disk seen yet")
)

// DiskPart is a partition as the system disk choice sees it: where it is
// and what its partition table calls it.
type DiskPart struct {
	Disk     string // kernel name of its disk: vda, nvme0n1
	Part     string // kernel name of the partition: vda2, nvme0n1p2
	Label    string // GPT partition name ("" on MBR disks)
	PartUUID string
}

func (p DiskPart) String() string {
	return fmt.Sprintf("%s (PARTLABEL=%s on %s)", p.Part, p.Label, p.Disk)
}

// SystemDisk is the disk every default-labelled keel partition of a boot
// comes from, and the keel-labelled partitions found elsewhere.
type SystemDisk struct {
	Disk   string
	Strays []DiskPart // keel labels on other disks, sorted: named, never used
	// ByLoader is set when the disk was chosen for holding the firmware's
	// boot partition (loaderPartUUID): another disk holding the slot
	// labels, then or later, is a stray here; the caller decides whether
	// to trust that choice (the init refuses it when locked).
	ByLoader bool
	// LoaderCopies are the other disks holding a partition with the
	// loader's PARTUUID, sorted: a disk cloned from this one.
	LoaderCopies []string
}

// ChooseSystemDisk decides which disk is the system disk, from the
// partitions of every known disk (docs/boot-sequence.md, "The system disk"):
//
//   - rootDisk != "" (single and plain modes, root= given): the disk that
//     holds root= is the system disk, whatever else is found.
//   - Otherwise, when loaderPartUUID is set (the EFI LoaderDevicePartUUID
//     systemd-boot or systemd-stub left: the partition the firmware loaded
//     it from), the disk holding that partition is the system disk if it
//     holds all the slot labels (root-a, verity-a, root-b, verity-b),
//     whatever other disk holds them too (ByLoader). While no disk holds it, the
//     error wraps ErrNoSystemDisk and ErrLoaderDiskNotSeen (the caller
//     waits, then decides without it); two disks holding it are an error
//     (a copy of the disk: which one the firmware read is a guess). A
//     loader partition on a disk without the slot labels (an ESP on
//     another disk) leaves the choice to the labels.
//   - Otherwise the system disk is the one disk that holds all the slot
//     labels. A disk holding only some keel labels is no candidate. Two
//     candidates are an error naming both.
//
// A keel label twice on the system disk is an error (which one would be
// used is a guess). Every keel-labelled partition on another disk is a
// stray. The decision is pure: the same partitions give the same answer.
func ChooseSystemDisk(parts []DiskPart, rootDisk, loaderPartUUID string) (SystemDisk, error) {
	byDisk := map[string][]DiskPart{}
	for _, p := range parts {
		byDisk[p.Disk] = append(byDisk[p.Disk], p)
	}
	disk, byLoader := rootDisk, false
	if disk == "" {
		var err error
		if disk, byLoader, err = chooseCandidate(byDisk, loaderPartUUID); err != nil {
			return SystemDisk{}, err
		}
	}
	if err := checkUnique(disk, byDisk[disk]); err != nil {
		return SystemDisk{}, err
	}
	sd := SystemDisk{Disk: disk, ByLoader: byLoader}
	for _, d := range disksHolding(byDisk, loaderPartUUID) {
		if d != disk {
			sd.LoaderCopies = append(sd.LoaderCopies, d)
		}
	}
	for _, p := range parts {
		if p.Disk != disk && IsKeelLabel(p.Label) {
			sd.Strays = append(sd.Strays, p)
		}
	}
	sortParts(sd.Strays)
	return sd, nil
}

func chooseCandidate(byDisk map[string][]DiskPart, loaderPartUUID string) (disk string, byLoader bool, err error) {
	var cands, partial []string
	for disk, ps := range byDisk {
		labels := keelLabels(ps)
		switch {
		case holdsAll(labels, SlotLabels()):
			cands = append(cands, disk)
		case len(labels) > 0:
			partial = append(partial, fmt.Sprintf("%s holds only %s", disk, strings.Join(labels, ", ")))
		}
	}
	sort.Strings(cands)
	sort.Strings(partial)
	if loaderPartUUID != "" {
		switch ld := disksHolding(byDisk, loaderPartUUID); {
		case len(ld) == 0:
			return "", false, fmt.Errorf("%w: %w: PARTUUID=%s (LoaderDevicePartUUID, the partition the firmware loaded the kernel from)", ErrNoSystemDisk, ErrLoaderDiskNotSeen, loaderPartUUID)
		case len(ld) > 1:
			return "", false, fmt.Errorf("%w: %s all hold PARTUUID=%s, the partition the firmware loaded the kernel from (LoaderDevicePartUUID): one is a copy of the other, and which one the firmware read cannot be told; remove the disk that is not this machine's",
				ErrTwoSystemDisks, joinAnd(ld), loaderPartUUID)
		case slices.Contains(cands, ld[0]):
			return ld[0], true, nil
		}
		// An ESP on a disk without the slots: the labels decide.
	}
	switch len(cands) {
	case 0:
		why := "no disk holds keel partitions"
		if len(partial) > 0 {
			why = strings.Join(partial, "; ")
		}
		return "", false, fmt.Errorf("%w: no disk holds all of %s (%s)", ErrNoSystemDisk, strings.Join(SlotLabels(), ", "), why)
	case 1:
		return cands[0], false, nil
	}
	return "", false, fmt.Errorf("%w: %s all hold %s: keel takes its partitions from one disk only; remove or relabel the others",
		ErrTwoSystemDisks, joinAnd(cands), strings.Join(SlotLabels(), ", "))
}

// disksHolding lists, sorted, the disks holding a partition whose PARTUUID
// is partUUID (any case); none for "".
func disksHolding(byDisk map[string][]DiskPart, partUUID string) []string {
	if partUUID == "" {
		return nil
	}
	var found []string
	for d, ps := range byDisk {
		if slices.ContainsFunc(ps, func(p DiskPart) bool { return strings.EqualFold(p.PartUUID, partUUID) }) {
			found = append(found, d)
		}
	}
	sort.Strings(found)
	return found
}

// checkUnique refuses a keel label held by two partitions of the system disk.
func checkUnique(disk string, ps []DiskPart) error {
	seen := map[string][]string{}
	for _, p := range ps {
		if IsKeelLabel(p.Label) {
			seen[p.Label] = append(seen[p.Label], p.Part)
		}
	}
	var dups []string
	for l, names := range seen {
		if len(names) > 1 {
			sort.Strings(names)
			dups = append(dups, fmt.Sprintf("%d partitions labelled %s (%s)", len(names), l, strings.Join(names, ", ")))
		}
	}
	if len(dups) == 0 {
		return nil
	}
	sort.Strings(dups)
	return fmt.Errorf("system disk %s has %s: expected one each", disk, strings.Join(dups, "; "))
}

// keelLabels lists the distinct keel labels of ps, sorted.
func keelLabels(ps []DiskPart) []string {
	set := map[string]bool{}
	for _, p := range ps {
		if IsKeelLabel(p.Label) {
			set[p.Label] = true
		}
	}
	out := make([]string, 0, len(set))
	for l := range set {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

func holdsAll(have, want []string) bool {
	for _, w := range want {
		if sort.SearchStrings(have, w) == len(have) || have[sort.SearchStrings(have, w)] != w {
			return false
		}
	}
	return true
}

func sortParts(ps []DiskPart) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Disk != ps[j].Disk {
			return ps[i].Disk < ps[j].Disk
		}
		return ps[i].Part < ps[j].Part
	})
}

func joinAnd(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// LateCandidates returns the disks among strays that hold every slot label:
// a second system disk that was announced after the choice was made. The
// boot must not go on with either, as two candidates at the choice would
// have been an error.
func LateCandidates(strays []DiskPart) []string {
	byDisk := map[string][]DiskPart{}
	for _, p := range strays {
		byDisk[p.Disk] = append(byDisk[p.Disk], p)
	}
	var out []string
	for disk, ps := range byDisk {
		if holdsAll(keelLabels(ps), SlotLabels()) {
			out = append(out, disk)
		}
	}
	sort.Strings(out)
	return out
}
