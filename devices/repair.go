// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/sys/unix"
)

// repair says what the operator must know about a disk's table t (read
// from the backup GPT) and, when the job may (Options.AddPartitions), gives
// the kernel the partitions of a GPT it did not read for one of the two
// reasons a fault gives it: without "gpt" on its command line Linux reads
// the primary GPT only, and only behind a valid protective MBR
// (block/partitions/efi.c), so one bad sector at LBA 0, 1 or in the entry
// array leaves a disk without partitions, and the machine without its
// system disk. A GPT the kernel refuses for another reason (entries other
// than 128 bytes, a usable range past the disk's end, a sector size not the
// disk's: a layout no fault makes) is named, not added. Nothing is written
// to the disk.
func (j *probeJob) repair(f *os.File, t GPT) []string {
	var notes []string
	if t.Damage != nil {
		notes = append(notes, fmt.Sprintf("%s: the primary GPT is damaged (%v); its partitions were read from the backup GPT at LBA %d: rewrite the primary from it (gdisk %s, then w)",
			j.path, t.Damage, t.BackupLBA, j.path))
	}
	if j.sysDir == "" || t.Sector == 0 || len(t.Parts) == 0 {
		return notes
	}
	has, allowed, err := kernelPartitions(j.sysDir, j.name, t.Parts)
	switch {
	case err != nil:
		return append(notes, fmt.Sprintf("%s: %v", j.path, err))
	case has || !allowed:
		return notes
	}
	var why string
	pmbr, pmbrErr := hasProtectiveMBR(f)
	switch {
	case t.Damage != nil:
		why = "it reads only the primary GPT"
	case pmbrErr != nil:
		why = "sector 0 cannot be read"
	case !pmbr:
		why = fmt.Sprintf("sector 0 holds no protective MBR, without which it does not read the GPT: write one (gdisk %s, then w)", j.path)
	default:
		return append(notes, fmt.Sprintf("%s: the kernel found no partition on it, though its GPT reads: not added (Linux refuses entries other than 128 bytes, a usable range past the disk's end)", j.path))
	}
	if bs, err := logicalBlockSize(f); err == nil && bs != t.Sector {
		return append(notes, fmt.Sprintf("%s: the kernel found no partition on it (%s); its GPT, found at %d-byte sectors, is not the disk's (%d bytes): not added", j.path, why, t.Sector, bs))
	}
	size, _ := readerSize(f)
	var added, failed []string
	for _, p := range t.Parts {
		name := PartitionName(j.name, p.Index)
		if err := addPartition(f, t.Sector, size, p); err != nil {
			failed = append(failed, fmt.Sprintf("%s (PARTLABEL=%s): %v", name, Shown(p.Name), err))
			continue
		}
		added = append(added, name)
	}
	if len(added) > 0 {
		notes = append(notes, fmt.Sprintf("%s: the kernel found no partition on it (%s); added the %d of its GPT: %s",
			j.path, why, len(added), firstOf(added, 16, ", ")))
	}
	if len(failed) > 0 {
		// One line, however many entries a hostile table holds.
		notes = append(notes, fmt.Sprintf("%s: %d of its GPT's partitions, which the kernel did not find, could not be added: %s",
			j.path, len(failed), firstOf(failed, 3, "; ")))
	}
	return notes
}

// Shown is how a name read from a disk (a partition label) goes into a
// message: as it is when every character is printable and no space, else
// quoted in Go syntax, so that a stick's label cannot break a console line,
// pose as a line of keel's, or hide where it ends.
func Shown(s string) string {
	for _, r := range s {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) || r == '"' || r == utf8.RuneError {
			return strconv.Quote(s)
		}
	}
	return s
}

// logicalBlockSize is the disk's logical sector size (BLKSSZGET); tests,
// whose disks are files, replace it.
var logicalBlockSize = func(f *os.File) (int64, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var bs int
	if cerr := rc.Control(func(fd uintptr) { bs, err = unix.IoctlGetInt(int(fd), unix.BLKSSZGET) }); cerr != nil {
		return 0, cerr
	}
	return int64(bs), err
}

// kernelPartitions reports whether sysfs lists a partition of disk (a
// directory under SYS/class/block/DISK holding a "partition" file: the
// kernel made them before it announced the disk), and whether the disk
// takes partitions at all (ext_range above 1: not a CD drive, not a loop
// device without partscan). The table's first partition is looked for by
// name first: on a sound disk that is one stat in every boot.
func kernelPartitions(sysDir, disk string, parts []Partition) (has, allowed bool, err error) {
	dir := filepath.Join(sysDir, "class", "block", disk)
	isPart := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name, "partition"))
		return err == nil
	}
	if len(parts) > 0 && isPart(PartitionName(disk, parts[0].Index)) {
		return true, true, nil
	}
	allowed = true
	if b, err := os.ReadFile(filepath.Join(dir, "ext_range")); err == nil {
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		allowed = err != nil || n > 1
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, allowed, fmt.Errorf("listing the kernel's partitions: %w", err)
	}
	for _, e := range ents {
		if isPart(e.Name()) {
			return true, allowed, nil
		}
	}
	return false, allowed, nil
}

// errOutside is an entry the kernel would not take either (is_pte_valid).
var errOutside = errors.New("outside the disk")

// addPartition checks that p lies on the disk (size bytes, sectors of
// sector bytes: Linux would cut it back to the disk's end) and adds it with
// BLKPG_ADD_PARTITION.
func addPartition(f *os.File, sector, size int64, p Partition) error {
	if p.FirstLBA == 0 || p.LastLBA < p.FirstLBA || size > 0 && p.LastLBA >= uint64(size/sector) || p.LastLBA > gptMaxLBA {
		return fmt.Errorf("LBAs %d to %d: %w (%d sectors of %d bytes)", p.FirstLBA, p.LastLBA, errOutside, size/sector, sector)
	}
	bp := unix.BlkpgPartition{
		Start:  int64(p.FirstLBA) * sector,
		Length: int64(p.LastLBA-p.FirstLBA+1) * sector,
		Pno:    int32(p.Index),
	}
	return blkpgAdd(f, &bp)
}

// blkpgAdd is the ioctl; tests replace it.
var blkpgAdd = func(f *os.File, p *unix.BlkpgPartition) error {
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_ADD_PARTITION, Datalen: int32(unsafe.Sizeof(*p)), Data: (*byte)(unsafe.Pointer(p))}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKPG, uintptr(unsafe.Pointer(&arg)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("BLKPG_ADD_PARTITION: %w", errno)
	}
	return nil
}

// firstOf joins the first n of items with sep, counting the rest.
func firstOf(items []string, n int, sep string) string {
	if len(items) <= n {
		return strings.Join(items, sep)
	}
	return strings.Join(items[:n], sep) + fmt.Sprintf("%s… %d more", sep, len(items)-n)
}
