// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"slices"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestStorageControllers boots the generic image (every storage driver of
// the default set) from the same A/B disk on each controller it supports,
// the disk alone on the machine: virtio-blk, NVMe, SATA (q35's AHCI) and
// virtio-scsi. The init loads a storage driver only for a device present
// (docs/boot-sequence.md, "Storage drivers by device"): each boot must
// find its disk, boot slot a with its bootstate there, and leave the
// drivers of the controllers the machine does not have unloaded. q35
// always has its AHCI controller, so ahci loads on every boot; sd_mod only
// when a SCSI disk is there (SATA, virtio-scsi).
func TestStorageControllers(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	rd := initrd(t)
	drive := func(path string) string {
		return "file=" + strings.ReplaceAll(path, ",", ",,") + ",if=none,id=d0,format=raw"
	}
	for _, tc := range []struct {
		name      string
		devices   func(path string) []string // QEMU arguments attaching the disk
		bootstate string
		loaded    []string
		absent    []string
	}{
		{"virtio-blk", nil, "/dev/vda5",
			[]string{"virtio_pci", "virtio_blk", "ahci"}, []string{"nvme", "virtio_scsi", "sd_mod"}},
		{"nvme", func(p string) []string {
			return []string{"-drive", drive(p), "-device", "nvme,drive=d0,serial=keel0"}
		}, "/dev/nvme0n1p5",
			[]string{"nvme", "ahci"}, []string{"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod"}},
		{"sata", func(p string) []string {
			return []string{"-drive", drive(p), "-device", "ide-hd,drive=d0,bus=ide.0"}
		}, "/dev/sda5",
			[]string{"ahci", "sd_mod"}, []string{"nvme", "virtio_pci", "virtio_blk", "virtio_scsi"}},
		{"virtio-scsi", func(p string) []string {
			return []string{"-device", "virtio-scsi-pci,id=scsi0", "-drive", drive(p), "-device", "scsi-hd,drive=d0,bus=scsi0.0"}
		}, "/dev/sda5",
			[]string{"virtio_pci", "virtio_scsi", "sd_mod", "ahci"}, []string{"nvme", "virtio_blk"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			disk := abDisk(t, &a, nil)
			o := vm.Options{Initrd: rd, Cmdline: "slot=a overlay=tmpfs keel.test.cat=/proc/modules"}
			if tc.devices == nil {
				o.Disks = []string{disk.Path}
			} else {
				o.QEMUArgs = tc.devices(disk.Path)
			}
			m := vm.Start(t, o)
			r := m.ExpectReport()
			m.ExpectPowerOff()
			br := bootReport(t, r)
			if br.Slot != "a" || r.Marker == nil || *r.Marker != "image-a" || br.Devices["bootstate"] != tc.bootstate {
				t.Errorf("slot %q, marker %v, devices %v: want image-a from slot a, bootstate %s", br.Slot, r.Marker, br.Devices, tc.bootstate)
			}
			c, _ := r.Cat("/proc/modules")
			var loaded []string
			for _, l := range strings.Split(c.Content, "\n") {
				if f := strings.Fields(l); len(f) > 0 {
					loaded = append(loaded, f[0])
				}
			}
			if len(loaded) == 0 {
				t.Fatalf("cat /proc/modules = %+v: want the modules loaded", c)
			}
			for _, name := range tc.loaded {
				if !slices.Contains(loaded, name) {
					t.Errorf("%s not loaded: the machine has its device (loaded: %v)", name, loaded)
				}
			}
			for _, name := range tc.absent {
				if slices.Contains(loaded, name) {
					t.Errorf("%s loaded: the machine has no device for it (loaded: %v)", name, loaded)
				}
			}
		})
	}
}
