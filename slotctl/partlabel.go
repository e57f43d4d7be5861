// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/devspec"
	"github.com/keel-boot/keel/report"
)

// errNotFound is wrapped when no partition carries a label.
var errNotFound = errors.New("not found")

// system is the running system's block devices, read from sysfs below
// root ("/" outside tests) and resolved with the init's own code (package
// devices): the system disk is chosen as the init chose it, and keel's
// partitions are taken from it only, never through udev's by-partlabel
// links (which name whichever disk udev saw last).
type system struct {
	root   string
	reg    *devices.Registry
	blocks map[string]devices.SysBlock // by kernel name
	disk   string                      // the system disk: vda
	busy   map[string]string           // device number -> what the running root uses it for
}

// loadSystem reads sysfs and chooses the system disk; rep (nil when there
// is no boot report) tells the mode, the root= device of single and plain
// boots, and the disk the init chose, which must still be the one.
func loadSystem(root string, rep *report.Report) (*system, error) {
	s := &system{root: root, blocks: map[string]devices.SysBlock{}}
	s.reg = devices.NewRegistry(devices.Options{DevDir: filepath.Join(root, "dev"), SysDir: filepath.Join(root, "sys")})
	bs, err := s.reg.LoadSysfs()
	if len(bs) == 0 && err != nil {
		return nil, fmt.Errorf("reading the block devices: %w", err)
	}
	for _, b := range bs {
		s.blocks[b.DevName] = b
	}
	now, cancel := context.WithCancel(context.Background())
	cancel() // everything is known already: decide, do not wait
	// The firmware's boot partition chose the disk at boot when the report
	// names it (slot mode); the init fell back to the labels when its disk
	// was never seen, and so does this.
	loader := ""
	if rep != nil && rep.Mode == "slot" {
		loader = rep.LoaderPartUUID
	}
	sd, err := s.reg.WaitSystemDisk(now, s.rootDisk(rep), loader)
	if errors.Is(err, devices.ErrLoaderDiskNotSeen) {
		sd, err = s.reg.WaitSystemDisk(now, s.rootDisk(rep), "")
	}
	if err != nil {
		return nil, fmt.Errorf("finding the system disk as the init does: %w", err)
	}
	if rep != nil && rep.SystemDisk != "" && rep.SystemDisk != "/dev/"+sd.Disk {
		return nil, fmt.Errorf("the system disk is /dev/%s now, but this boot used %s (boot report): refusing to guess", sd.Disk, rep.SystemDisk)
	}
	s.disk = sd.Disk
	s.busy = s.rootDevices(rep)
	return s, nil
}

// rootDisk is the disk holding root= in single and plain modes, "" in slot
// mode (or without a report).
func (s *system) rootDisk(rep *report.Report) string {
	if rep == nil || rep.Mode == "slot" {
		return ""
	}
	for _, role := range []string{"image", "root"} {
		if dev := rep.Devices[role]; dev != "" {
			if d := s.reg.DiskOf(filepath.Join(s.root, dev)); d != "" {
				return d
			}
		}
	}
	return ""
}

// find returns the device node of the partition labelled label on the
// system disk.
func (s *system) find(label string) (string, error) {
	if !s.reg.HasPartLabel(s.disk, label) {
		return "", fmt.Errorf("%s: %w: the system disk /dev/%s has no partition with that GPT label", label, errNotFound, s.disk)
	}
	now, cancel := context.WithCancel(context.Background())
	cancel()
	dev, err := s.reg.WaitForOnDisk(now, devspec.OfPartLabel(label), s.disk)
	if err != nil {
		return "", fmt.Errorf("%s: %w: listed in the partition table of /dev/%s but no device: %v", label, errNotFound, s.disk, err)
	}
	return dev, nil
}

// rootDevices are the device numbers the running root is made of: the
// devices under keel's verity mappings (from sysfs's dm slaves, whatever
// the names in the report) and the image, hash and plain root devices the
// boot report names.
func (s *system) rootDevices(rep *report.Report) map[string]string {
	busy := map[string]string{}
	for _, b := range s.blocks {
		if !strings.HasPrefix(b.DMName, "keel-root") {
			continue
		}
		for _, sl := range b.Slaves {
			if d, ok := s.blocks[sl]; ok {
				busy[devNo(d)] = "under /dev/mapper/" + b.DMName
			}
		}
	}
	if rep == nil {
		return busy
	}
	for _, role := range []string{"image", "hash", "root"} {
		if d, ok := s.blocks[filepath.Base(rep.Devices[role])]; ok && rep.Devices[role] != "" {
			busy[devNo(d)] = "the running " + role + " device"
		}
	}
	return busy
}

// checkWritable refuses a device the running root is made of.
func (s *system) checkWritable(label, dev string) error {
	b, ok := s.blocks[filepath.Base(dev)]
	if !ok {
		return nil
	}
	if why := s.busy[devNo(b)]; why != "" {
		return fmt.Errorf("%s: %s (%s) is %s: refusing to write it (boot the other slot first)", label, dev, devNo(b), why)
	}
	return nil
}

func devNo(b devices.SysBlock) string { return fmt.Sprintf("%d:%d", b.Major, b.Minor) }
