// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SysBlock is what sysfs says about one block device, read from
// SYS/class/block/NAME: the uevent file (MAJOR, MINOR, DEVNAME, DEVTYPE,
// PARTN, PARTNAME), the size, and for device-mapper devices their name and
// the devices they are stacked on. It is the one reader of /sys/class/block:
// coldplug, slotctl and the rescue shell's lsblk all go through it.
type SysBlock struct {
	Uevent           // Action "add"; DevPath from the class/block link, so Parent works
	Name    string   // the entry's name: vda1, dm-0
	Sectors int64    // size in 512-byte sectors; -1 when unreadable
	DMName  string   // dm/name of a device-mapper device: keel-root-a
	Slaves  []string // slaves/: what a dm device maps (vda1, vda2), sorted
}

// IsPartition reports whether the device is a partition of a disk.
func (b SysBlock) IsPartition() bool { return b.DevType == "partition" }

// BlockNames lists the entries of sysRoot/class/block, sorted. It reads
// nothing else: coldplug writes one file per name and must stay cheap.
func BlockNames(sysRoot string) ([]string, error) {
	dir := filepath.Join(sysRoot, "class", "block")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// ScanBlock reads every entry of sysRoot/class/block, sorted by name. A
// device that vanishes while it is read is left out.
func ScanBlock(sysRoot string) ([]SysBlock, error) {
	names, err := BlockNames(sysRoot)
	if err != nil {
		return nil, err
	}
	var out []SysBlock
	var errs []error
	for _, n := range names {
		b, err := ReadSysBlock(sysRoot, n)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, b)
	}
	return out, errors.Join(errs...)
}

// ReadSysBlock reads sysRoot/class/block/name.
func ReadSysBlock(sysRoot, name string) (SysBlock, error) {
	dir := filepath.Join(sysRoot, "class", "block", name)
	raw, err := os.ReadFile(filepath.Join(dir, "uevent"))
	if err != nil {
		return SysBlock{}, fmt.Errorf("block device %s: %w", name, err)
	}
	ev, err := ParseUeventFile(raw, devPathOf(dir, name))
	if err != nil {
		return SysBlock{}, err
	}
	b := SysBlock{Uevent: ev, Name: name, Sectors: -1}
	if s, err := os.ReadFile(filepath.Join(dir, "size")); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64); err == nil && n >= 0 {
			b.Sectors = n
		}
	}
	if s, err := os.ReadFile(filepath.Join(dir, "dm", "name")); err == nil {
		b.DMName = strings.TrimSpace(string(s))
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "slaves")); err == nil {
		for _, e := range ents {
			b.Slaves = append(b.Slaves, e.Name())
		}
		sort.Strings(b.Slaves)
	}
	return b, nil
}

// devPathOf is the device's path below /sys as a uevent's DEVPATH gives it,
// from the class/block symlink (../../devices/…/block/vda/vda1). A plain
// directory (not sysfs) gets /NAME: no parent is known.
func devPathOf(dir, name string) string {
	target, err := os.Readlink(dir)
	if err != nil {
		return "/" + name
	}
	for strings.HasPrefix(target, "../") {
		target = target[3:]
	}
	return path.Clean("/" + target)
}

// ParseUeventFile parses a sysfs uevent file (KEY=VALUE lines) of the block
// device at devpath into the Uevent an "add" for it would carry.
func ParseUeventFile(b []byte, devpath string) (Uevent, error) {
	ev := Uevent{Action: "add", DevPath: devpath, Env: map[string]string{"SUBSYSTEM": "block"}}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return Uevent{}, fmt.Errorf("uevent file of %s: line %q: want KEY=VALUE", devpath, truncate(line, 64))
		}
		ev.Env[k] = v
	}
	return ev, ev.fill()
}
