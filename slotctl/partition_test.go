// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keel-boot/keel/report"
)

// fakeDev is a block device of a fake running system.
type fakeDev struct {
	name, parent string
	major, minor int
	partname     string
	image        string   // a disk's content (a GPT image); partitions are empty files
	dmName       string   // a device-mapper device's name
	slaves       []string // what a dm device maps
}

// fakeRoot lays out a running system below a temporary root: sysfs as the
// kernel does (device directories, class/block symlinks, uevent files, dm
// names and slaves) and /dev nodes as files.
func fakeRoot(t *testing.T, devs ...fakeDev) string {
	t.Helper()
	root := t.TempDir()
	write := func(p, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	symlink := func(target, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range devs {
		rel := filepath.Join("devices/virtual/block", d.parent, d.name)
		typ, extra := "disk", ""
		if d.parent != "" {
			typ, extra = "partition", fmt.Sprintf("PARTN=%d\nPARTNAME=%s\n", d.minor%16, d.partname)
		}
		write(filepath.Join(root, "sys", rel, "uevent"), fmt.Sprintf("MAJOR=%d\nMINOR=%d\nDEVNAME=%s\nDEVTYPE=%s\n%s", d.major, d.minor, d.name, typ, extra))
		if d.dmName != "" {
			write(filepath.Join(root, "sys", rel, "dm/name"), d.dmName+"\n")
		}
		for _, sl := range d.slaves {
			symlink("../../"+sl, filepath.Join(root, "sys", rel, "slaves", sl))
		}
		symlink(filepath.Join("../..", rel), filepath.Join(root, "sys/class/block", d.name))
		if d.image != "" {
			symlink(d.image, filepath.Join(root, "dev", d.name))
		} else {
			write(filepath.Join(root, "dev", d.name), "")
		}
	}
	return root
}

// gptDisk partitions an image with the labels given, 1 MiB each.
func gptDisk(t *testing.T, labels ...string) string {
	t.Helper()
	script := "label: gpt\n"
	for _, l := range labels {
		script += "size=1MiB, name=" + l + "\n"
	}
	return sfdiskDisk(t, len(labels), script)
}

// sfdiskDisk is a disk image with room for n partitions of 1 MiB,
// partitioned by the sfdisk script.
func sfdiskDisk(t *testing.T, n int, script string) string {
	t.Helper()
	needTool(t, "sfdisk")
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, int64(n+2)<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return disk
}

// disk lists a disk and its partitions, labelled in order.
func disk(name string, major, minor int, image string, labels ...string) []fakeDev {
	devs := []fakeDev{{name: name, major: major, minor: minor, image: image}}
	for i, l := range labels {
		devs = append(devs, fakeDev{name: fmt.Sprintf("%s%d", name, i+1), parent: name, major: major, minor: minor + i + 1, partname: l})
	}
	return devs
}

var abLabels = []string{"root-a", "verity-a", "root-b", "verity-b", "bootstate"}

// stickLabels are keel labels on a second disk: not a system disk.
var stickLabels = []string{"root-a", "data", "bootstate"}

// TestOpenOnSystemDisk: the running system's partitions come from the
// system disk only, as in the init, whatever another disk carries.
func TestOpenOnSystemDisk(t *testing.T) {
	// sdb sorts (and is announced) first: "first seen" would take its root-a.
	root := fakeRoot(t, slices.Concat(disk("sdb", 8, 16, gptDisk(t, stickLabels...), stickLabels...),
		disk("vda", 254, 0, gptDisk(t, abLabels...), abLabels...))...)
	tg := &target{root: root, reportPath: writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "b", SystemDisk: "/dev/vda"})}
	p, err := tg.open("root-a", true)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if want := filepath.Join(root, "dev/vda1"); p.path != want {
		t.Errorf("root-a opened %s, want %s", p.path, want)
	}
	if _, err := tg.open("data", false); !errors.Is(err, errNotFound) || !strings.Contains(err.Error(), "the system disk /dev/vda has no partition with that GPT label") {
		t.Errorf("data: %v, want not found on the system disk", err)
	}
}

func TestSystemDiskRefusals(t *testing.T) {
	ab := gptDisk(t, abLabels...)
	tests := []struct {
		name string
		devs []fakeDev
		rep  report.Report
		want string
	}{
		{"two system disks", slices.Concat(disk("vda", 254, 0, ab, abLabels...), disk("vdb", 254, 16, gptDisk(t, abLabels...), abLabels...)),
			report.Report{Mode: "slot", Slot: "a"}, "more than one system disk: vda and vdb"},
		{"no system disk", disk("sdb", 8, 16, gptDisk(t, stickLabels...), stickLabels...),
			report.Report{Mode: "slot", Slot: "a"}, "no system disk: no disk holds all of root-a, verity-a, root-b, verity-b (sdb holds only bootstate, data, root-a)"},
		{"another disk than the boot's", disk("vda", 254, 0, ab, abLabels...),
			report.Report{Mode: "slot", Slot: "a", SystemDisk: "/dev/sda"}, "the system disk is /dev/vda now, but this boot used /dev/sda"},
	}
	for _, tt := range tests {
		tg := &target{root: fakeRoot(t, tt.devs...), reportPath: writeReport(t, t.TempDir(), tt.rep)}
		if _, err := tg.open("root-b", true); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestRefusesRunningRootDevices: a partition under keel's running verity
// mapping, or the running plain or single root, is never written, by device
// number, whatever its label or the report's slot says.
func TestRefusesRunningRootDevices(t *testing.T) {
	ab := gptDisk(t, abLabels...)
	devs := append(disk("vda", 254, 0, ab, abLabels...), fakeDev{name: "dm-0", major: 253, dmName: "keel-root-a", slaves: []string{"vda1", "vda2"}})
	// The report claims slot b runs (stale, or edited): the dm table says a.
	tg := &target{root: fakeRoot(t, devs...), reportPath: writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "b"})}
	for _, label := range []string{"root-a", "verity-a"} {
		if _, err := tg.open(label, true); err == nil || !strings.Contains(err.Error(), "is under /dev/mapper/keel-root-a: refusing to write it") {
			t.Errorf("%s: %v, want refused", label, err)
		}
	}
	if p, err := tg.open("root-a", false); err != nil {
		t.Errorf("reading root-a: %v", err)
	} else {
		p.Close()
	}
	if p, err := tg.open("root-b", true); err != nil {
		t.Errorf("root-b: %v", err)
	} else {
		p.Close()
	}
	// Plain mode: root= is a partition labelled root-a; its disk is the
	// system disk, even without slot b.
	stick := disk("sdb", 8, 16, gptDisk(t, stickLabels...), stickLabels...)
	tg = &target{root: fakeRoot(t, stick...), reportPath: writeReport(t, t.TempDir(), report.Report{Mode: "plain", Devices: map[string]string{"root": "/dev/sdb1"}})}
	if _, err := tg.open("root-a", true); err == nil || !strings.Contains(err.Error(), "(8:17) is the running root device") {
		t.Errorf("plain root: %v, want refused", err)
	}
	if p, err := tg.open("bootstate", true); err != nil {
		t.Errorf("bootstate of the plain root's disk: %v", err)
	} else {
		p.Close()
	}
}

func TestPartitionBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("0123456789abcdef"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &partition{label: "root-a", path: path, f: f, off: 4, size: 8}
	defer p.Close()
	b := make([]byte, 6)
	if n, err := p.ReadAt(b, 4); n != 4 || err != io.EOF || string(b[:n]) != "89ab" {
		t.Errorf("read across the end: %d %q, %v", n, b[:n], err)
	}
	if n, err := p.ReadAt(b, 8); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
	if _, err := p.WriteAt([]byte("xyz"), 6); err == nil || !strings.Contains(err.Error(), "root-a: write of 3 bytes at byte 6 past the end of the partition (8 bytes)") {
		t.Errorf("write across the end: %v", err)
	}
	if n, err := p.WriteAt([]byte("XY"), 6); n != 2 || err != nil {
		t.Fatalf("write at the end: %d, %v", n, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "0123456789XYcdef" {
		t.Errorf("file after writes: %q", got)
	}
	if err := p.dropCache(8); err != nil {
		t.Errorf("dropCache: %v", err)
	}
}

func TestOpenInDisk(t *testing.T) {
	disk := makeDisk(t, t.TempDir(), "1MiB")
	p, err := openInDisk(disk, "bootstate", false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// sfdisk aligns to 1 MiB: root-a, verity-a, root-b, verity-b, bootstate.
	if p.off != 5<<20 || p.size != 1<<20 {
		t.Errorf("bootstate at %d, %d bytes; want %d, %d", p.off, p.size, 5<<20, 1<<20)
	}
	if _, err := openInDisk(disk, "data", false); err == nil || !strings.Contains(err.Error(), "no partition labelled data in the GPT") {
		t.Errorf("missing partition: %v", err)
	}
	if _, err := openInDisk(filepath.Join(t.TempDir(), "nope"), "data", false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing disk: %v", err)
	}
}

// TestOpenInDiskDamagedPrimary: an image whose primary GPT header is
// damaged is read from its backup, as the init reads it.
func TestOpenInDiskDamagedPrimary(t *testing.T) {
	disk := makeDisk(t, t.TempDir(), "1MiB")
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff}, 512+40); err != nil { // the first usable LBA: the CRC no longer matches
		t.Fatal(err)
	}
	f.Close()
	var warn strings.Builder
	tg := &target{disk: disk, warn: &warn}
	for range 2 {
		p, err := tg.open("bootstate", false)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		if p.off != 5<<20 || p.size != 1<<20 || p.damage == nil {
			t.Errorf("bootstate at %d, %d bytes, damage %v; want %d, %d, a damaged primary", p.off, p.size, p.damage, 5<<20, 1<<20)
		}
	}
	if w := warn.String(); strings.Count(w, "the primary GPT is damaged (GPT header at byte 512: checksum mismatch") != 1 {
		t.Errorf("warnings %q: want the damage said once", w)
	}
}

// TestSystemDiskByLoader: on a boot whose system disk the firmware's boot
// partition chose (boot.json loader_partuuid), slotctl chooses it the same
// way among two disks holding every slot label, as the init did; before, it
// refused the two as the init used to. A loader partition on no disk leaves
// the labels to decide, as in the init.
func TestSystemDiskByLoader(t *testing.T) {
	const esp = "5f1c8a2e-93d4-4b7a-8e61-0c2d7b9e4a13"
	script := "label: gpt\nsize=1MiB, name=esp, uuid=" + strings.ToUpper(esp) + "\n"
	for _, l := range abLabels {
		script += "size=1MiB, name=" + l + "\n"
	}
	withESP := sfdiskDisk(t, len(abLabels)+1, script)
	devs := slices.Concat(disk("vda", 254, 0, gptDisk(t, abLabels...), abLabels...), disk("vdb", 254, 16, withESP, append([]string{"esp"}, abLabels...)...))
	tg := &target{root: fakeRoot(t, devs...), reportPath: writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "a", SystemDisk: "/dev/vdb", LoaderPartUUID: esp})}
	p, err := tg.open("root-a", true)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if want := filepath.Join(tg.root, "dev/vdb2"); p.path != want {
		t.Errorf("root-a opened %s, want %s (the loader's disk)", p.path, want)
	}
	tg = &target{root: fakeRoot(t, devs...), reportPath: writeReport(t, t.TempDir(), report.Report{Mode: "slot", Slot: "a", SystemDisk: "/dev/vdb", LoaderPartUUID: "0e3c7a55-0000-4000-8000-000000000001"})}
	if _, err := tg.open("root-a", true); err == nil || !strings.Contains(err.Error(), "more than one system disk: vda and vdb") {
		t.Errorf("the loader's partition on no disk: %v, want the labels' answer (two disks)", err)
	}
}
