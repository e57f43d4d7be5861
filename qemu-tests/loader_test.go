// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/report"
	"github.com/keel-boot/keel/qemu-tests/vm"
)

// espPartUUID is the PARTUUID of the test ESP: systemd-stub reports the
// partition it was loaded from as LoaderDevicePartUUID (in capitals).
const espPartUUID = "5f1c8a2e-93d4-4b7a-8e61-0c2d7b9e4a13"

// espPart is an EFI System Partition (PARTUUID espPartUUID) holding uki
// at the removable media path, which OVMF boots without a boot entry.
func espPart(t testing.TB, uki string) vm.Part {
	t.Helper()
	size := sizeMiB(t, uki) + 1 // room for the FAT itself
	img := vm.ESP(t, size, map[string]string{"EFI/BOOT/BOOTX64.EFI": uki})
	return vm.Part{Name: "esp", SizeMiB: size, UUID: espPartUUID, Type: vm.ESPType, Content: img}
}

// TestLoaderPartitionChoosesTheDisk boots through OVMF and a unified
// kernel image (systemd-stub 252, the test kernel, keel's generic
// initramfs) with two disks that both hold every slot label: the first, a
// stick with another signed image and no ESP; the second, the system disk,
// whose ESP the firmware boots. keel reads LoaderDevicePartUUID from
// efivarfs and takes the disk holding that partition: the system disk's
// image boots and the stick's partitions are strays. Before, two
// candidates were an error and the boot stopped; with the stick slower
// than a USB system disk, the stick's image was booted.
//
// Locked, the second disk is refused instead. With a stick that also holds
// a copy of the ESP's PARTUUID (a disk copied with dd), which one the
// firmware read cannot be told: the boot stops, naming both.
func TestLoaderPartitionChoosesTheDisk(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	vm.NeedOVMF(t)
	kernel := vm.Kernel(t)
	stickImg := seal(t, payloadTree(t, "stick"), "", "img-stick")
	sysImg := seal(t, payloadTree(t, "system"), "", "img-system")
	uki := vm.UKI(t, kernel, initrd(t), "")

	t.Run("firmware's disk", func(t *testing.T) {
		t.Parallel()
		stick := abDisk(t, &stickImg, nil)
		system := abDisk(t, &sysImg, nil, espPart(t, uki))
		m := vm.Start(t, vm.Options{UEFI: true, Disks: []string{stick.Path, system.Path}})
		m.ExpectRegexp(`efi: EFI v\S+ by EDK II`)
		m.Expect("the partition the firmware loaded the kernel from")
		r := m.ExpectReport()
		m.ExpectPowerOff()
		br := bootReport(t, r)
		if marker(r) != "system" || br.Slot != "a" || br.RootHash != sysImg.rootHash {
			t.Errorf("marker %q slot %q root hash %s: want the system disk's image (%s)", marker(r), br.Slot, br.RootHash, sysImg.rootHash)
		}
		if br.LoaderPartUUID != espPartUUID {
			t.Errorf("boot.json loader_partuuid %q: want the ESP's %s", br.LoaderPartUUID, espPartUUID)
		}
		if len(br.StrayPartitions) != 5 {
			t.Errorf("strays %+v: want the stick's five keel partitions", br.StrayPartitions)
		}
		for _, s := range br.StrayPartitions {
			if s.Disk == br.SystemDisk {
				t.Errorf("stray %+v on the system disk %s", s, br.SystemDisk)
			}
		}
	})

	// Locked, the firmware's choice does not make the other disk a stray:
	// a firmware made to boot a copy of the operator's own signed kernel
	// from the stick's ESP would choose the stick, older image and all.
	t.Run("locked", func(t *testing.T) {
		t.Parallel()
		key := signingKey(t, "release")
		stickSigned := seal(t, payloadTree(t, "stick"), key, "img-stick")
		sysSigned := seal(t, payloadTree(t, "system"), key, "img-system")
		lockedUKI := vm.UKI(t, kernel, initrd(t, "--locked", "--trust", key+".pub"), "")
		stick := abDisk(t, &stickSigned, nil)
		system := abDisk(t, &sysSigned, nil, espPart(t, lockedUKI))
		m := vm.Start(t, vm.Options{UEFI: true, Disks: []string{stick.Path, system.Path}})
		m.ExpectRegexp(`more than one system disk: /dev/vd[ab] holds PARTUUID=` + espPartUUID + `, the partition the firmware loaded the kernel from, and /dev/vd[ab] holds every slot label too: the initramfs is locked`)
		m.Expect("keel: BOOT FAILED:")
		m.ExpectReboot()
		if strings.Contains(m.Output(), "switching root") {
			t.Error("a locked initramfs booted with two disks holding every slot label")
		}
	})

	t.Run("a copy of the firmware's partition", func(t *testing.T) {
		t.Parallel()
		stick := abDisk(t, &stickImg, nil, vm.Part{Name: "esp-copy", SizeMiB: 1, UUID: espPartUUID})
		system := abDisk(t, &sysImg, nil, espPart(t, uki))
		m := vm.Start(t, vm.Options{UEFI: true, Disks: []string{stick.Path, system.Path}})
		m.ExpectRegexp(`more than one system disk: vd[ab] and vd[ab] all hold PARTUUID=` + strings.ToLower(espPartUUID) + `, the partition the firmware loaded the kernel from`)
		m.Expect("keel: BOOT FAILED:")
		m.Kill()
		if out := m.Output(); strings.Contains(out, report.Line(report.KeyMarker, "")) {
			t.Errorf("a slot booted:\n%s", out)
		}
	})
}
