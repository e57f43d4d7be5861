// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
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

// Errors of ChooseSystemDisk.
var (
	ErrNoSystemDisk   = errors.New("no system disk")
	ErrTwoSystemDisks = errors.New("more than one system disk")
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
}

// ChooseSystemDisk decides which disk is the system disk, from the
// partitions of every known disk (docs/boot-sequence.md, "The system disk"):
//
//   - rootDisk != "" (single and plain modes, root= given): the disk that
//     holds root= is the system disk, whatever else is found.
//   - Otherwise the system disk is the one disk that holds all the slot
//     labels (root-a, verity-a, root-b, verity-b). A disk holding only some
//     keel labels is no candidate. Two candidates are an error naming both,
//     unless loaderPartUUID (the EFI LoaderDevicePartUUID the boot loader
//     left, "" when none) is a partition of exactly one of them.
//
// A keel label twice on the system disk is an error (which one would be
// used is a guess). Every keel-labelled partition on another disk is a
// stray. The decision is pure: the same partitions give the same answer.
func ChooseSystemDisk(parts []DiskPart, rootDisk, loaderPartUUID string) (SystemDisk, error) {
	byDisk := map[string][]DiskPart{}
	for _, p := range parts {
		byDisk[p.Disk] = append(byDisk[p.Disk], p)
	}
	disk := rootDisk
	if disk == "" {
		var err error
		if disk, err = chooseCandidate(byDisk, loaderPartUUID); err != nil {
			return SystemDisk{}, err
		}
	}
	if err := checkUnique(disk, byDisk[disk]); err != nil {
		return SystemDisk{}, err
	}
	sd := SystemDisk{Disk: disk}
	for _, p := range parts {
		if p.Disk != disk && IsKeelLabel(p.Label) {
			sd.Strays = append(sd.Strays, p)
		}
	}
	sortParts(sd.Strays)
	return sd, nil
}

func chooseCandidate(byDisk map[string][]DiskPart, loaderPartUUID string) (string, error) {
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
	switch len(cands) {
	case 0:
		why := "no disk holds keel partitions"
		if len(partial) > 0 {
			why = strings.Join(partial, "; ")
		}
		return "", fmt.Errorf("%w: no disk holds all of %s (%s)", ErrNoSystemDisk, strings.Join(SlotLabels(), ", "), why)
	case 1:
		return cands[0], nil
	}
	if d := loaderDisk(byDisk, cands, loaderPartUUID); d != "" {
		return d, nil
	}
	return "", fmt.Errorf("%w: %s all hold %s: keel takes its partitions from one disk only; remove or relabel the others",
		ErrTwoSystemDisks, joinAnd(cands), strings.Join(SlotLabels(), ", "))
}

// loaderDisk is the one candidate holding the partition the boot loader
// was started from, or "".
func loaderDisk(byDisk map[string][]DiskPart, cands []string, partUUID string) string {
	if partUUID == "" {
		return ""
	}
	var found []string
	for _, d := range cands {
		for _, p := range byDisk[d] {
			if strings.EqualFold(p.PartUUID, partUUID) {
				found = append(found, d)
				break
			}
		}
	}
	if len(found) == 1 {
		return found[0]
	}
	return ""
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
