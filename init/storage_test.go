// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-boot/keel/bakedconf"
)

// storagePlan is a generic image's plan in small: the virtio, AHCI, NVMe
// and SCSI disk drivers with their libraries, and squashfs; extra is
// added (a driver without device aliases).
func storagePlan(extra ...bakedconf.Module) []bakedconf.Module {
	k := "/lib/modules/6.1.0-57-amd64/kernel/"
	return append([]bakedconf.Module{
		{Name: "virtio", Path: k + "drivers/virtio/virtio.ko"},
		{Name: "virtio_pci", Path: k + "drivers/virtio/virtio_pci.ko", Deps: []string{"virtio"}, Aliases: []string{"pci:v00001AF4d*sv*sd*bc*sc*i*"}},
		{Name: "virtio_blk", Path: k + "drivers/block/virtio_blk.ko", Deps: []string{"virtio"}, Aliases: []string{"virtio:d00000002v*"}},
		{Name: "scsi_mod", Path: k + "drivers/scsi/scsi_mod.ko"},
		{Name: "virtio_scsi", Path: k + "drivers/scsi/virtio_scsi.ko", Deps: []string{"virtio", "scsi_mod"}, Aliases: []string{"virtio:d00000008v*"}},
		{Name: "libata", Path: k + "drivers/ata/libata.ko", Deps: []string{"scsi_mod"}},
		{Name: "ahci", Path: k + "drivers/ata/ahci.ko", Deps: []string{"libata"}, Aliases: []string{"pci:v*d*sv*sd*bc01sc06i01*"}},
		{Name: "nvme_core", Path: k + "drivers/nvme/host/nvme-core.ko"},
		{Name: "nvme", Path: k + "drivers/nvme/host/nvme.ko", Deps: []string{"nvme_core"}, Aliases: []string{"pci:v*d*sv*sd*bc01sc08i02*"}},
		{Name: "sd_mod", Path: k + "drivers/scsi/sd_mod.ko", Deps: []string{"scsi_mod"}, Aliases: []string{"scsi:t-0x00*", "scsi:t-0x0e*"}},
		{Name: "squashfs", Path: k + "fs/squashfs/squashfs.ko"},
	}, extra...)
}

// startStorage starts the eager loads of plan, with f's devices and loads.
func startStorage(f *fakeBuses, plan []bakedconf.Module) *boot {
	b := newBoot(time.Now())
	b.log = newLogger(&bytes.Buffer{})
	b.baked = &bakedconf.Config{Modules: plan}
	b.readModaliases = f.modaliases
	b.loadEagerWith(f.load, newLiveSet(storageNames(plan)))
	return b
}

// fakeBuses are the devices on the buses the init reads, which the loads
// of drivers add to as the kernel's would: virtio_pci's load brings the
// virtio devices of the PCI ones, an adapter's its SCSI disks.
type fakeBuses struct {
	mu      sync.Mutex
	devices []string
	after   map[string][]string      // module name → the devices its load brings
	hold    map[string]chan struct{} // module name → its load returns once closed
	loaded  []string
}

func (f *fakeBuses) load(p, _ string) error {
	name := strings.TrimSuffix(path.Base(p), ".ko")
	name = strings.ReplaceAll(name, "-", "_")
	if c := f.hold[name]; c != nil {
		<-c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loaded = append(f.loaded, name)
	f.devices = append(f.devices, f.after[name]...)
	return nil
}

func (f *fakeBuses) modaliases() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.devices)
}

func (f *fakeBuses) hasLoaded(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.loaded, name)
}

const (
	pciVirtioBlk  = "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
	pciVirtioSCSI = "pci:v00001AF4d00001004sv00001AF4sd00000008bc01sc00i00"
	pciAHCI       = "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
	pciNVMe       = "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"
	pciVGA        = "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00"
)

// TestLoadStorageByDevice: each storage driver loads only for a device
// present, including the devices an earlier load brought (virtio's, the
// SCSI disks), and the system disk's wait ends only once they are all in.
func TestLoadStorageByDevice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pci     []string
		after   map[string][]string
		extra   []bakedconf.Module
		loaded  []string
		skipped []string
	}{
		{"virtio-blk on q35", []string{pciVGA, pciAHCI, pciVirtioBlk},
			map[string][]string{"virtio_pci": {"virtio:d00000002v00001AF4"}}, nil,
			[]string{"virtio", "virtio_pci", "virtio_blk", "scsi_mod", "libata", "ahci", "squashfs"},
			[]string{"nvme", "nvme_core", "virtio_scsi", "sd_mod"}},
		// The virtio device predicted from the PCI ids alone starts
		// virtio_blk beside virtio_pci: here the bus never lists it.
		{"virtio-blk predicted", []string{pciVirtioBlk}, nil, nil,
			[]string{"virtio", "virtio_pci", "virtio_blk"},
			[]string{"virtio_scsi", "ahci", "nvme", "sd_mod"}},
		// virtio-mmio (arm64's virt machine): the virtio devices are there
		// from the start, with no PCI device for them.
		{"virtio-mmio", []string{"virtio:d00000002v554D4551"}, nil, nil,
			[]string{"virtio", "virtio_blk"},
			[]string{"virtio_pci", "ahci", "nvme", "sd_mod"}},
		{"virtio-scsi", []string{pciVirtioSCSI},
			map[string][]string{"virtio_pci": {"virtio:d00000008v00001AF4"}, "virtio_scsi": {"scsi:t-0x00"}}, nil,
			[]string{"virtio", "virtio_pci", "scsi_mod", "virtio_scsi", "sd_mod"},
			[]string{"virtio_blk", "ahci", "libata", "nvme"}},
		{"SATA and NVMe", []string{pciAHCI, pciNVMe},
			map[string][]string{"ahci": {"scsi:t-0x00", "scsi:t-0x05"}}, nil,
			[]string{"ahci", "libata", "scsi_mod", "sd_mod", "nvme", "nvme_core"},
			[]string{"virtio", "virtio_pci", "virtio_blk", "virtio_scsi"}},
		// A driver with no device aliases (usb_storage's are on USB) loads
		// at once; the SCSI disks it finds may come late, so sd_mod loads
		// with it, with no SCSI device yet.
		{"a driver the init cannot gate", []string{pciNVMe}, nil,
			[]bakedconf.Module{{Name: "usb_storage", Path: "/lib/modules/6.1.0-57-amd64/kernel/drivers/usb/storage/usb-storage.ko", Deps: []string{"scsi_mod"}}},
			[]string{"usb_storage", "scsi_mod", "sd_mod", "nvme", "nvme_core"},
			[]string{"virtio_pci", "ahci"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeBuses{devices: tc.pci, after: tc.after}
			plan := storagePlan(tc.extra...)
			b := startStorage(f, plan)
			<-b.storageLoaded
			for _, name := range tc.loaded {
				if name != "squashfs" && !f.hasLoaded(name) {
					t.Errorf("the system disk's wait ended before %s loaded (loaded %v)", name, f.loaded)
				}
			}
			if !b.waitBackground(-1) {
				t.Fatal("the background loads did not end")
			}
			for _, name := range tc.loaded {
				if !f.hasLoaded(name) {
					t.Errorf("%s not loaded (loaded %v)", name, f.loaded)
				}
			}
			for _, name := range tc.skipped {
				if f.hasLoaded(name) {
					t.Errorf("%s loaded with no device for it (loaded %v)", name, f.loaded)
				}
			}
			if len(b.rep.Warnings) != 0 {
				t.Errorf("warnings %q", b.rep.Warnings)
			}
		})
	}
}

// TestLoadStorageNoDeviceMatched: when no device matches any driver (no
// /sys, or the disk on a bus the init does not read), every storage driver
// loads, as without the choice, and the report says why.
func TestLoadStorageNoDeviceMatched(t *testing.T) {
	f := &fakeBuses{devices: []string{pciVGA}}
	plan := storagePlan()
	b := startStorage(f, plan)
	<-b.storageLoaded
	for _, name := range []string{"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "nvme", "sd_mod"} {
		if !f.hasLoaded(name) {
			t.Errorf("%s not loaded before the system disk's wait ended (loaded %v)", name, f.loaded)
		}
	}
	b.waitBackground(-1)
	if w := strings.Join(b.rep.Warnings, "\n"); !strings.Contains(w, "no device on the pci, virtio, scsi buses matched a storage driver of the image (virtio_pci, virtio_blk, virtio_scsi, ahci, nvme, sd_mod): loading them all") {
		t.Errorf("warnings %q: want the reason every driver loaded", b.rep.Warnings)
	}
}

// TestLoadStorageWaitsForSysfs: the choice reads /sys only once the
// early-mounts phase mounted it; the drivers loaded whatever the devices
// do not wait for it.
func TestLoadStorageWaitsForSysfs(t *testing.T) {
	f := &fakeBuses{devices: []string{pciNVMe}}
	plan := storagePlan(bakedconf.Module{Name: "vendor_disk", Path: "/lib/modules/6.1.0-57-amd64/updates/vendor_disk.ko"})
	b := newBoot(time.Now())
	b.log = newLogger(&bytes.Buffer{})
	b.baked = &bakedconf.Config{Modules: plan}
	mounted := false
	var mu sync.Mutex
	b.readModaliases = func() []string {
		mu.Lock()
		defer mu.Unlock()
		if !mounted {
			t.Error("/sys read before it was mounted")
		}
		return f.modaliases()
	}
	vendorLoaded := make(chan struct{})
	load := func(p, params string) error {
		if strings.Contains(p, "vendor_disk") {
			close(vendorLoaded)
		}
		return f.load(p, params)
	}
	b.sysfs = newSysfsGate()
	b.loadEagerWith(load, newLiveSet(storageNames(plan)))
	<-vendorLoaded // blocks for ever (the test times out) if the eager driver waits for /sys
	mu.Lock()
	mounted = true
	mu.Unlock()
	b.sysfs.open()
	b.sysfs.open() // idempotent: the early-mounts phase opens it on its way out too
	<-b.storageLoaded
	b.waitBackground(-1)
	if !f.hasLoaded("nvme") || f.hasLoaded("ahci") {
		t.Errorf("loaded %v: want nvme, not ahci", f.loaded)
	}
}

// TestStorageGate: which drivers of a plan wait for a device.
func TestStorageGate(t *testing.T) {
	g := newStorageGate(eagerModules(storagePlan()))
	if want := []string{"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "nvme", "sd_mod"}; !slices.Equal(g.gatedNames(), want) || len(g.eager) != 0 {
		t.Errorf("gated %v, eager %v: want %v gated, none eager", g.gatedNames(), g.eager, want)
	}
	if got := g.match([]string{pciAHCI, pciVGA, pciAHCI}); !slices.Equal(got, []string{"ahci"}) {
		t.Errorf("match = %v, want [ahci]", got)
	}
	if got := g.match([]string{pciAHCI}); got != nil {
		t.Errorf("match again = %v, want nothing new", got)
	}
	if got, want := g.unneeded(), []string{"virtio", "virtio_pci", "virtio_blk", "virtio_scsi", "nvme_core", "nvme", "sd_mod"}; !slices.Equal(got, want) {
		t.Errorf("unneeded = %v, want %v", got, want)
	}
	// A baked plan without aliases (an older mkinitrd) gates nothing.
	var old []bakedconf.Module
	for _, m := range storagePlan() {
		m.Aliases = nil
		old = append(old, m)
	}
	if g := newStorageGate(old); len(g.gated) != 0 {
		t.Errorf("no aliases baked: gated %v, want none", g.gatedNames())
	}
}

// TestBusModaliases reads a sysfs tree: devices without a modalias (SCSI
// hosts and targets) and buses that are not there are skipped.
func TestBusModaliases(t *testing.T) {
	dir := t.TempDir()
	for p, body := range map[string]string{
		"bus/pci/devices/0000:00:1f.2/modalias": pciAHCI + "\n",
		"bus/pci/devices/0000:00:01.0/vendor":   "0x1234\n",
		"bus/scsi/devices/0:0:0:0/modalias":     "scsi:t-0x00\n",
		"bus/scsi/devices/host0/uevent":         "DEVTYPE=scsi_host\n",
	} {
		writeTestFile(t, dir+"/"+p, body)
	}
	if got, want := busModaliases(dir), []string{pciAHCI, "scsi:t-0x00"}; !slices.Equal(got, want) {
		t.Errorf("busModaliases = %q, want %q", got, want)
	}
	if got := busModaliases(dir + "/absent"); got != nil {
		t.Errorf("no /sys: %q, want nothing", got)
	}
}

func writeTestFile(t *testing.T, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVirtioOfPCI: the virtio device a virtio PCI device brings, modern
// and transitional, and nothing for another device or a short modalias.
func TestVirtioOfPCI(t *testing.T) {
	for _, tc := range []struct{ pci, want string }{
		{pciVirtioBlk, "virtio:d00000002v00001AF4"},                                            // transitional block: subsystem device 2
		{pciVirtioSCSI, "virtio:d00000008v00001AF4"},                                           // transitional SCSI
		{"pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00", "virtio:d00000002v00001AF4"}, // modern block
		{"pci:v00001AF4d00001048sv00001AF4sd00001100bc01sc00i00", "virtio:d00000008v00001AF4"},
		{"pci:v00001AF4d00001042sv0000108Esd00001100bc01sc00i00", "virtio:d00000002v0000108E"}, // the subsystem vendor
		{"pci:v00001AF4d00001110sv00001AF4sd00001100bc05sc00i00", ""},                          // ivshmem: not virtio
		{pciAHCI, ""},
		{"pci:v00001AF4d00001001", ""},
		{"pci:v00001AF4dXXXXXXXXsv00001AF4sd00000002bc01sc00i00", ""},
		{"", ""},
	} {
		got, ok := virtioOfPCI(tc.pci)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("virtioOfPCI(%q) = %q, %v; want %q", tc.pci, got, ok, tc.want)
		}
	}
}

// TestWithPredictedLeavesTheCallersSpare: the prediction is appended to a
// new array, never into spare capacity the caller's slice shares.
func TestWithPredictedLeavesTheCallersSpare(t *testing.T) {
	backing := make([]string, 1, 4)
	backing[0] = pciVirtioBlk
	got := withPredicted(backing)
	if want := []string{pciVirtioBlk, "virtio:d00000002v00001AF4"}; !slices.Equal(got, want) {
		t.Fatalf("withPredicted = %q, want %q", got, want)
	}
	if spare := backing[:2][1]; spare != "" {
		t.Errorf("withPredicted wrote %q into the caller's spare capacity", spare)
	}
}

// FuzzVirtioOfPCI: any sysfs text; a prediction is always a virtio
// modalias of the form virtio_pci gives, with the subsystem vendor.
func FuzzVirtioOfPCI(f *testing.F) {
	f.Add(pciVirtioBlk)
	f.Add("pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00")
	f.Add("pci:v00001AF4d")
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := virtioOfPCI(s)
		if ok && (len(v) != len("virtio:d00000002v00001AF4") || !strings.HasPrefix(v, "virtio:d") || v[16] != 'v' || !strings.EqualFold(v[17:], s[24:32])) {
			t.Errorf("virtioOfPCI(%q) = %q", s, v)
		}
	})
}

// TestLoadStorageLateDevice: a device the kernel adds after every load
// returned (a Fibre Channel adapter's SCSI disk, a kernel whose module
// loads do not wait for a NUMA node's probe) still gets its driver, from
// its uevent's modalias, and one whose uevent was lost (an overflow) from
// a full read of the buses, as long as the boot has not begun its wait
// for the background loads; that wait waits for such a load, and a device
// added after it starts nothing.
func TestLoadStorageLateDevice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeBuses{devices: []string{pciAHCI}, hold: map[string]chan struct{}{"nvme": make(chan struct{})}}
		b := startStorage(f, storagePlan())
		<-b.storageLoaded
		if f.hasLoaded("sd_mod") {
			t.Fatalf("sd_mod loaded with no SCSI device (loaded %v)", f.loaded)
		}
		b.storageEv.deviceAdded("usb", "usb:v1D6Bp0003d0601dc09dsc00dp03ic09isc00ip00in00") // not a bus the choice reads
		synctest.Wait()
		b.storageEv.deviceAdded("scsi", "scsi:t-0x00") // the disk's uevent; the fake buses never list it
		synctest.Wait()
		if !f.hasLoaded("sd_mod") {
			t.Errorf("sd_mod not loaded for a SCSI disk added late (loaded %v)", f.loaded)
		}
		f.mu.Lock()
		f.devices = append(f.devices, pciNVMe)
		f.mu.Unlock()
		b.storageEv.deviceAdded("", "") // uevents lost: read the buses
		synctest.Wait()
		if b.waitBackground(time.Second) {
			t.Error("the wait for the background loads ended while nvme's load, started late, was still held")
		}
		close(f.hold["nvme"])
		if !b.waitBackground(-1) {
			t.Fatal("the background loads did not end")
		}
		if !f.hasLoaded("nvme") {
			t.Errorf("nvme not loaded after a full read found its device (loaded %v)", f.loaded)
		}
		b.storageEv.deviceAdded("pci", pciVirtioBlk)
		synctest.Wait()
		if f.hasLoaded("virtio_pci") {
			t.Errorf("virtio_pci loaded after the boot's wait for its loads (loaded %v)", f.loaded)
		}
	})
}

// TestLoadStorageForRescue: a failed boot's wait for the background
// loads starts every storage driver not loaded yet, so that the rescue
// shell has them all, as before the choice.
func TestLoadStorageForRescue(t *testing.T) {
	f := &fakeBuses{devices: []string{pciNVMe}}
	b := startStorage(f, storagePlan())
	<-b.storageLoaded
	if f.hasLoaded("ahci") {
		t.Fatalf("ahci loaded with no AHCI controller (loaded %v)", f.loaded)
	}
	b.storageForRescue()
	if !b.waitBackground(-1) {
		t.Fatal("the background loads did not end")
	}
	for _, name := range []string{"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "nvme", "sd_mod"} {
		if !f.hasLoaded(name) {
			t.Errorf("%s not loaded for the rescue shell (loaded %v)", name, f.loaded)
		}
	}
}

// TestLoadStorageOtherBus: a machine whose disks are on a bus the init
// does not read (Hyper-V's storvsc, added to the image) loads that driver
// at once, with sd_mod, and none of the gated ones, without a warning.
func TestLoadStorageOtherBus(t *testing.T) {
	f := &fakeBuses{devices: []string{pciVGA}}
	plan := storagePlan(bakedconf.Module{Name: "hv_storvsc", Path: "/lib/modules/6.1.0-57-amd64/kernel/drivers/scsi/hv_storvsc.ko", Deps: []string{"scsi_mod"}})
	b := startStorage(f, plan)
	<-b.storageLoaded
	b.waitBackground(-1)
	if !f.hasLoaded("hv_storvsc") || !f.hasLoaded("sd_mod") || f.hasLoaded("ahci") || f.hasLoaded("nvme") || f.hasLoaded("virtio_pci") {
		t.Errorf("loaded %v: want hv_storvsc and sd_mod, none of the gated drivers", f.loaded)
	}
	if len(b.rep.Warnings) != 0 {
		t.Errorf("warnings %q: want none", b.rep.Warnings)
	}
}
