// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestMBRPartUUIDRoot boots a plain ext4 root on an MBR (dos label) disk
// named by root=PARTUUID=<disk signature>-01, as the kernel's own root=
// takes it.
func TestMBRPartUUIDRoot(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	img := vm.MkExt4(t, payloadTree(t, "mbr"), 32, "")
	disk := vm.NewDOSDisk(t, "", "0a1b2c3d", []vm.Part{{SizeMiB: 33, Content: img}})
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "root=PARTUUID=0A1B2C3D-01"})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Mode != "plain" || br.Devices["root"] != "/dev/vda1" || br.SystemDisk != "/dev/vda" {
		t.Errorf("boot.json %s: want plain mode on /dev/vda1, system disk /dev/vda", r.BootJSON)
	}
	if r.Marker == nil || *r.Marker != "mbr" {
		t.Errorf("marker %v, want mbr", r.Marker)
	}
}

// strayDisk is a second disk with keel's labels and crafted contents: an
// image signed by the release key (an older signed image on a stick), a
// data file system, bootstate bytes that are no boot state.
func strayDisk(t *testing.T) vm.Disk {
	t.Helper()
	evil := seal(t, payloadTree(t, "image-evil"), signingKey(t, "release"), "img-evil")
	junk := filepath.Join(t.TempDir(), "junk")
	b := make([]byte, 1<<20)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return vm.NewDisk(t, "", []vm.Part{
		{Name: "root-a", SizeMiB: sizeMiB(t, evil.squashfs), Content: evil.squashfs},
		{Name: "verity-a", SizeMiB: 1, Content: evil.verity},
		{Name: "data", SizeMiB: 33, Content: vm.MkExt4(t, payloadTree(t, "attacker-data"), 32, "data")},
		{Name: "bootstate", SizeMiB: 1, Content: junk},
	})
}

// partBytes reads one partition of a disk image.
func partBytes(t *testing.T, d vm.Disk, label string) []byte {
	t.Helper()
	p := d.Part(t, label)
	return fileBytes(t, d.Path, p.Offset, p.Size)
}

// fileBytes reads n bytes of a file at off.
func fileBytes(t *testing.T, path string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStrayPartitionsIgnored: a second disk carrying root-a, verity-a, data
// and bootstate, announced first, is not the system disk (it lacks slot b):
// the A/B disk's slot boots, every stray is named on the console and in
// boot.json, and the second disk's partitions are not written.
func TestStrayPartitionsIgnored(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	f := newAB(t, "")
	stick := strayDisk(t)
	before := map[string][]byte{}
	for _, l := range []string{"root-a", "verity-a", "data", "bootstate"} {
		before[l] = partBytes(t, stick, l)
	}
	// The stick is the first drive, normally vda and announced first:
	// "first seen wins" would take all four from it. The kernel names the
	// two virtio disks in the order their probes run, which the parallel
	// module loads (virtio_pci beside virtio_blk) do not fix, so the names
	// are read from the console: keel says which disk it chose.
	m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{stick.Path, f.disk.Path}})
	sys := m.ExpectRegexp(`keel: system disk: /dev/(vd[ab])$`)[1]
	other := map[string]string{"vda": "vdb", "vdb": "vda"}[sys]
	for _, n := range []string{"1 (PARTLABEL=root-a)", "3 (PARTLABEL=data)", "4 (PARTLABEL=bootstate)"} {
		m.Expect(fmt.Sprintf("ignoring /dev/%s%s: it is on /dev/%s, not on the system disk /dev/%s", other, n, other, sys))
	}
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if r.Marker == nil || *r.Marker != "image-a" || br.Slot != "a" || br.SystemDisk != "/dev/"+sys {
		t.Errorf("marker %v, boot.json %s: want image-a from slot a of /dev/%s", r.Marker, r.BootJSON, sys)
	}
	var strays []string
	for _, s := range br.StrayPartitions {
		strays = append(strays, s.Device+" "+s.Label+" "+s.Disk)
	}
	if want := strings.ReplaceAll("/dev/X1 root-a /dev/X, /dev/X2 verity-a /dev/X, /dev/X3 data /dev/X, /dev/X4 bootstate /dev/X", "X", other); strings.Join(strays, ", ") != want {
		t.Errorf("stray_partitions %q, want %q", strings.Join(strays, ", "), want)
	}
	if br.Devices["bootstate"] != "/dev/"+sys+"5" || br.Data != nil || br.Devices["image"] != "/dev/"+sys+"1" {
		t.Errorf("devices %v, data %+v: want the bootstate and image of /dev/%s and no data partition", br.Devices, br.Data, sys)
	}
	for l, b := range before {
		if !bytes.Equal(partBytes(t, stick, l), b) {
			t.Errorf("the stray %s partition was written", l)
		}
	}
	if s := diskStatus(t, f.disk.Path); s.Sequence == 0 {
		t.Errorf("the system disk's boot state was not written (sequence 0): boot counting used another device")
	}
}

// TestTwoSystemDisks: two disks that both hold every slot label are an
// error naming both, never a silent pick.
func TestTwoSystemDisks(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	one, two := abDisk(t, nil, nil), abDisk(t, nil, nil)
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{one.Path, two.Path}})
	m.Expect("keel: BOOT FAILED:")
	m.Expect("more than one system disk: vda and vdb all hold root-a, verity-a, root-b, verity-b")
	shellWorks(t, m)
	m.Kill()
}

// TestTwoSystemDisksSATA: the second disk is on the SATA controller (q35's
// AHCI), whose driver chain loads and probes its ports for about a second
// under emulation, long after the virtio disk is known; the libraries of
// that chain are loaded with async_probe and the drivers without
// (docs/boot-sequence.md). The system disk is still chosen only once the
// SATA disk is seen: the boot fails naming both, and never boots the
// virtio disk that came first.
func TestTwoSystemDisksSATA(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	one, two := abDisk(t, nil, nil), abDisk(t, nil, nil)
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{one.Path}, QEMUArgs: []string{
		"-drive", "file=" + strings.ReplaceAll(two.Path, ",", ",,") + ",if=none,id=sata0,format=raw",
		"-device", "ide-hd,drive=sata0,bus=ide.0",
	}})
	m.Expect("keel: BOOT FAILED:")
	m.Expect("more than one system disk: sda and vda all hold root-a, verity-a, root-b, verity-b")
	shellWorks(t, m)
	m.Kill()
}

// gptAreas reads the bytes of a disk image's two partition tables: the
// protective MBR, the primary header and entries (34 sectors), and the
// backup's entries and header (the last 33).
func gptAreas(t *testing.T, path string) []byte {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return append(fileBytes(t, path, 0, 34*512), fileBytes(t, path, fi.Size()-33*512, 33*512)...)
}

// TestDamagedPrimaryGPT: one bad sector in the system disk's primary GPT
// (its header, its entry array) or in its protective MBR leaves the kernel,
// which reads the primary only and only behind a valid protective MBR,
// without any of the disk's partitions: the machine had no system disk.
// keel reads the backup GPT, gives the kernel the partitions, boots the
// slot with its try counted in the bootstate partition, says what it found
// on the console and in boot.json, and writes nothing to either table.
func TestDamagedPrimaryGPT(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	f := newAB(t, "")
	pristine, err := os.ReadFile(f.disk.Path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(off int64) func([]byte) {
		return func(d []byte) {
			for i := range 8 {
				d[off+int64(i)] ^= 0xff
			}
		}
	}
	for _, tc := range []struct {
		name string
		edit func(disk []byte)
		want string // on the console and in the report
	}{
		{"header", flip(512 + 40), "the primary GPT is damaged (GPT header at byte 512: checksum mismatch"},
		{"entry array", flip(1024 + 60), "the primary GPT is damaged (GPT entry array: checksum mismatch"},
		// A wiped MBR: with no 0x55aa the kernel's DOS parser finds nothing either.
		{"protective MBR", func(d []byte) { clear(d[446:512]) }, "the kernel found no partition on it (sector 0 holds no protective MBR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := bytes.Clone(pristine)
			tc.edit(d)
			if err := os.WriteFile(f.disk.Path, d, 0o644); err != nil {
				t.Fatal(err)
			}
			tables := gptAreas(t, f.disk.Path)
			m := vm.Start(t, vm.Options{Initrd: f.initrd, Disks: []string{f.disk.Path}})
			m.Expect("keel: /dev/vda: " + tc.want)
			r := m.ExpectReport()
			m.ExpectPowerOff()
			br := bootReport(t, r)
			if br.Slot != "a" || r.Marker == nil || *r.Marker != "image-a" || br.Devices["bootstate"] != "/dev/vda5" {
				t.Errorf("slot %q, marker %v, devices %v: want image-a from slot a, bootstate /dev/vda5", br.Slot, r.Marker, br.Devices)
			}
			w := strings.Join(br.Warnings, "\n")
			if !strings.Contains(w, tc.want) || !strings.Contains(w, "added the 5 of its GPT: vda1, vda2, vda3, vda4, vda5") {
				t.Errorf("boot.json warnings %q: want %q and the 5 partitions added", br.Warnings, tc.want)
			}
			if !bytes.Equal(gptAreas(t, f.disk.Path), tables) {
				t.Error("the partition tables were written: keel must leave their repair to the operator")
			}
			if s := diskStatus(t, f.disk.Path); !s.Initialised || s.slot(t, "a").Tries != bootstate.DefaultTries-1 {
				t.Errorf("boot state %+v: want slot a's first try counted", s)
			}
			_, warn := runSplit(t, keelTools(t).slotctl, "status", "--disk", f.disk.Path)
			if damaged := strings.Contains(tc.want, "damaged"); damaged != strings.Contains(warn, "the primary GPT is damaged") {
				t.Errorf("slotctl status --disk warned %q: want the damage said when the primary is damaged", warn)
			}
		})
	}
}
