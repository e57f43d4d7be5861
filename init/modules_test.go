// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/datapart"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
)

// TestFSPrefetch: which file system loads before any disk is known, for
// which configuration.
func TestFSPrefetch(t *testing.T) {
	plan := []bakedconf.Module{{Name: "virtio_blk"}, {Name: "crc16"}, {Name: "ext4", Deps: []string{"crc16"}}, {Name: "btrfs"}, {Name: "xfs"}}
	noData := []bakedconf.Module{{Name: "virtio_blk"}, {Name: "squashfs"}}
	for _, tt := range []struct {
		name string
		cfg  kargs.Config
		plan []bakedconf.Module
		want []string
		why  string
	}{
		{"plain root", kargs.Config{Root: "/dev/vda1"}, plan, []string{"ext4"}, "root=/dev/vda1"},
		{"plain root, rootfstype", kargs.Config{Root: "/dev/vda1", RootFSType: "xfs"}, plan, []string{"xfs"}, "root=/dev/vda1"},
		{"plain root, rootfstype not in the plan", kargs.Config{Root: "/dev/vda1", RootFSType: "f2fs"}, plan, nil, ""},
		{"single image with roothash", kargs.Config{Root: "/dev/vda1", RootHash: "ab"}, plan, nil, ""},
		{"single image with a verity hash device", kargs.Config{Root: "/dev/vda1", VerityHash: "/dev/vda2"}, plan, nil, ""},
		{"slot, persistent overlay", kargs.Config{Overlay: mounts.OverlayPersistent}, plan, []string{"btrfs"}, "the data partition"},
		{"slot, data=", kargs.Config{Data: "LABEL=mine", Overlay: mounts.OverlayTmpfs}, plan, []string{"btrfs"}, "the data partition"},
		{"slot, no data asked for", kargs.Config{Overlay: mounts.OverlayTmpfs}, plan, nil, ""},
		{"slot, persistent overlay but data=none", kargs.Config{Data: kargs.DataNone, Overlay: mounts.OverlayPersistent}, plan, nil, ""},
		{"slot, data= that does not parse", kargs.Config{Data: "NOSUCHKEY=x", Overlay: mounts.OverlayPersistent}, plan, nil, ""},
		{"slot, no data file system in the plan", kargs.Config{Overlay: mounts.OverlayPersistent}, noData, nil, ""},
	} {
		got, why := fsPrefetch(tt.cfg, tt.plan)
		if !slices.Equal(got, tt.want) || why != tt.why {
			t.Errorf("%s: fsPrefetch = %v, %q; want %v, %q", tt.name, got, why, tt.want, tt.why)
		}
	}
}

func TestPrefetchType(t *testing.T) {
	hostOnly := []bakedconf.Module{{Name: "virtio_blk"}, {Name: "crc16"}, {Name: "ext4", Deps: []string{"crc16"}}}
	generic := append(hostOnly, bakedconf.Module{Name: "btrfs"}, bakedconf.Module{Name: "xfs"})
	for _, tt := range []struct {
		name string
		mods []bakedconf.Module
		want string
		out  string
	}{
		{"host-only ext4", hostOnly, "", "ext4"},
		{"generic: the first type tried", generic, "", "ext4"},
		{"rootfstype in the plan", generic, "xfs", "xfs"},
		{"rootfstype built in or missing", generic, "f2fs", ""},
		{"no file-system module", []bakedconf.Module{{Name: "virtio_blk"}}, "", ""},
	} {
		if got := prefetchType(tt.mods, tt.want); got != tt.out {
			t.Errorf("%s: prefetchType = %q, want %q", tt.name, got, tt.out)
		}
	}
}

// TestBackgroundLoading: need waits for a module the background load has in
// flight instead of loading it again, and background failures reach the
// report when the boot waits for them.
func TestBackgroundLoading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		plan := []bakedconf.Module{{Name: "virtio_blk", Path: "/m/virtio_blk.ko"}, {Name: "crc16", Path: "/m/crc16.ko"},
			{Name: "ext4", Path: "/m/ext4.ko", Deps: []string{"crc16"}}, {Name: "usb_storage", Path: "/m/usb_storage.ko"}}
		var mu sync.Mutex
		loads := map[string]int{}
		release := make(chan struct{})
		loader := func(path, _ string) error {
			if path == "/m/crc16.ko" {
				<-release
			}
			mu.Lock()
			defer mu.Unlock()
			loads[path]++
			if path == "/m/usb_storage.ko" {
				return errors.New("no such device")
			}
			return nil
		}
		var console bytes.Buffer
		b := &boot{log: newLogger(&console), rep: &report.Report{}, baked: &bakedconf.Config{Modules: plan}}
		b.mods = &kmod.Session{Root: "/", Loader: loader}
		b.background(plan)
		done := make(chan struct{})
		var released atomic.Bool
		go func() {
			b.need("ext4")
			if !released.Load() {
				t.Error("need(ext4) returned while crc16 was still loading")
			}
			close(done)
		}()
		// The verdict is the order of the two events, not a clock: once every
		// other goroutine of the bubble is blocked, a need that did not wait
		// has returned already, and is caught.
		synctest.Wait()
		released.Store(true)
		close(release)
		<-done
		if !b.waitBackground(-1) {
			t.Error("waitBackground(-1) did not wait")
		}
		for path, n := range loads {
			if n != 1 {
				t.Errorf("%s loaded %d times", path, n)
			}
		}
		if len(loads) != 4 {
			t.Errorf("loaded %v, want the 4 modules once each", loads)
		}
		if len(b.rep.Warnings) != 1 || !strings.Contains(b.rep.Warnings[0], "usb_storage") {
			t.Errorf("warnings %q: want the background failure of usb_storage", b.rep.Warnings)
		}
	})
}

// TestWaitBackgroundLimit: the emergency path's bounded wait gives up on a
// module load that does not end, and says so; the full wait does not.
func TestWaitBackgroundLimit(t *testing.T) {
	release := make(chan struct{})
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), rep: &report.Report{}}
	b.mods = &kmod.Session{Root: "/", Loader: func(string, string) error { <-release; return errors.New("probe failed") }}
	b.background([]bakedconf.Module{{Name: "slow", Path: "/m/slow.ko"}})
	// The load cannot end before release: both bounded waits must give up,
	// however long they took.
	if b.waitBackground(0) || b.waitBackground(20*time.Millisecond) {
		t.Fatal("waitBackground reported a load in flight as ended")
	}
	if len(b.rep.Warnings) != 0 {
		t.Fatalf("warnings before the load ended: %q", b.rep.Warnings)
	}
	close(release)
	if !b.waitBackground(-1) || len(b.rep.Warnings) != 1 || !strings.Contains(b.rep.Warnings[0], "probe failed") {
		t.Errorf("after the load: warnings %q", b.rep.Warnings)
	}
}

// TestStorageDrivers: the system disk is chosen once these are loaded, so
// every driver that may announce a disk must be among them; file systems,
// the device mapper and crypto must not hold the choice up.
func TestStorageDrivers(t *testing.T) {
	k := "lib/modules/6.1.0-57-amd64/kernel/"
	plan := []bakedconf.Module{
		{Name: "crc32c_intel", Path: k + "arch/x86/crypto/crc32c-intel.ko"},
		{Name: "t10_pi", Path: k + "block/t10-pi.ko"},
		{Name: "scsi_mod", Path: k + "drivers/scsi/scsi_mod.ko"},
		{Name: "sd_mod", Path: k + "drivers/scsi/sd_mod.ko", Deps: []string{"scsi_mod", "t10_pi"}},
		{Name: "virtio_blk", Path: "/" + k + "drivers/block/virtio_blk.ko"},
		{Name: "vendor_disk", Path: "lib/modules/6.1.0-57-amd64/updates/vendor_disk.ko"},
		{Name: "dm_mod", Path: k + "drivers/md/dm-mod.ko"},
		{Name: "squashfs", Path: k + "fs/squashfs/squashfs.ko"},
		{Name: "libcrc32c", Path: k + "lib/libcrc32c.ko"},
		{Name: "xts", Path: k + "crypto/xts.ko"},
	}
	got := names(storageDrivers(plan))
	want := []string{"t10_pi", "scsi_mod", "sd_mod", "virtio_blk", "vendor_disk"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("storageDrivers = %v, want %v (a dependency under block/ comes with its driver)", got, want)
	}
}

// TestModulesLoadedWaitsForStorageOnly: the system disk's wait ends when
// the storage drivers are in, while the rest of the plan still loads.
func TestModulesLoadedWaitsForStorageOnly(t *testing.T) {
	k := "/m/kernel/"
	plan := []bakedconf.Module{{Name: "virtio_blk", Path: k + "drivers/block/virtio_blk.ko"}, {Name: "squashfs", Path: k + "fs/squashfs/squashfs.ko"}}
	release := make(chan struct{})
	loader := func(path, _ string) error {
		if strings.Contains(path, "squashfs") {
			<-release
		}
		return nil
	}
	b := newBoot(time.Now())
	b.log = newLogger(&bytes.Buffer{})
	b.baked = &bakedconf.Config{Modules: plan}
	b.loadEagerWith(loader, newLiveSet(storageNames(plan)))
	b.modulesLoaded(context.Background()) // returns although squashfs is held
	if b.waitBackground(0) {
		t.Error("the background loads ended while squashfs was held")
	}
	close(release)
	if !b.waitBackground(-1) {
		t.Error("the background loads did not end")
	}
}

// TestRestStartsWhenStorageLive: the rest of the plan starts once every
// storage driver is announced live, while the drivers' loads have not
// returned (they wait for their asynchronous probing); without the
// announcement it starts when the loads return.
func TestRestStartsWhenStorageLive(t *testing.T) {
	k := "/m/kernel/"
	plan := []bakedconf.Module{{Name: "ahci", Path: k + "drivers/ata/ahci.ko"}, {Name: "squashfs", Path: k + "fs/squashfs/squashfs.ko"}}
	for _, announced := range []bool{true, false} {
		release, restStarted := make(chan struct{}), make(chan struct{})
		var ahciReturned atomic.Bool
		loader := func(path, _ string) error {
			if strings.Contains(path, "squashfs") {
				if !announced && !ahciReturned.Load() {
					t.Error("the rest started before the storage drivers' loads returned, with no announcement")
				}
				close(restStarted)
				return nil
			}
			<-release
			ahciReturned.Store(true)
			return nil
		}
		b := newBoot(time.Now())
		b.log = newLogger(&bytes.Buffer{})
		b.baked = &bakedconf.Config{Modules: plan}
		live := newLiveSet(storageNames(plan))
		b.loadEagerWith(loader, live)
		if announced {
			live.mark("ahci") // the kernel's uevent: ahci's init returned
			<-restStarted     // blocks forever (the test times out) if the rest waits for ahci's load
			close(release)
		} else {
			close(release)
			<-restStarted
		}
		if !b.waitBackground(-1) {
			t.Error("the background loads did not end")
		}
	}
}

func TestLiveSet(t *testing.T) {
	s := newLiveSet([]string{"crc-t10dif", "ahci"})
	s.mark("squashfs")
	s.mark("crc_t10dif")
	select {
	case <-s.all:
		t.Fatal("closed with ahci pending")
	default:
	}
	s.mark("ahci")
	s.mark("ahci") // twice: no double close
	<-s.all
	<-newLiveSet(nil).all // nothing to wait for
	var none *liveSet
	none.mark("ahci") // a boot without a module session
}

// TestAsyncProbe: the drivers (storage and watchdog drivers no other module
// depends on) are loaded without async_probe, so that their load returning
// still means their devices were probed; libraries, file systems, the
// device mapper and crypto are loaded with it, so that they do not wait
// for another driver's probing.
func TestAsyncProbe(t *testing.T) {
	k := "kernel/"
	plan := []bakedconf.Module{
		{Name: "scsi_mod", Path: k + "drivers/scsi/scsi_mod.ko"},
		{Name: "libata", Path: k + "drivers/ata/libata.ko", Deps: []string{"scsi_mod"}},
		{Name: "libahci", Path: k + "drivers/ata/libahci.ko", Deps: []string{"libata"}},
		{Name: "ahci", Path: k + "drivers/ata/ahci.ko", Deps: []string{"libahci", "libata"}},
		{Name: "virtio_blk", Path: k + "drivers/block/virtio_blk.ko"},
		{Name: "i6300esb", Path: k + "drivers/watchdog/i6300esb.ko"},
		{Name: "xor", Path: k + "crypto/xor.ko"},
		{Name: "btrfs", Path: k + "fs/btrfs/btrfs.ko", Deps: []string{"xor"}},
		{Name: "dm_mod", Path: k + "drivers/md/dm-mod.ko"},
		{Name: "crc64", Path: k + "lib/crc64.ko"},
	}
	want := map[string]string{
		"scsi_mod": "async_probe", "libata": "async_probe", "libahci": "async_probe",
		"ahci": "", "virtio_blk": "", "i6300esb": "",
		"xor": "async_probe", "btrfs": "async_probe", "dm_mod": "async_probe", "crc64": "async_probe",
	}
	params := asyncProbe(plan)
	for _, m := range plan {
		if got := params(m); got != want[m.Name] {
			t.Errorf("%s (%s) is loaded with %q, want %q", m.Name, m.Path, got, want[m.Name])
		}
	}
}

// TestLoadPriority: every module of the storage drivers' chains waits less
// than any other (the system disk waits for those drivers), the bottom of a
// longer chain before the bottom of a shorter one, and the watchdog
// drivers and on-demand file systems, outside the eager storage set, come
// after.
func TestLoadPriority(t *testing.T) {
	k := "kernel/"
	plan := []bakedconf.Module{
		{Name: "scsi_common", Path: k + "drivers/scsi/scsi_common.ko"},
		{Name: "scsi_mod", Path: k + "drivers/scsi/scsi_mod.ko", Deps: []string{"scsi_common"}},
		{Name: "libata", Path: k + "drivers/ata/libata.ko", Deps: []string{"scsi_mod"}},
		{Name: "libahci", Path: k + "drivers/ata/libahci.ko", Deps: []string{"libata"}},
		{Name: "ahci", Path: k + "drivers/ata/ahci.ko", Deps: []string{"libahci", "libata"}},
		{Name: "virtio", Path: k + "drivers/virtio/virtio.ko"},
		{Name: "virtio_blk", Path: k + "drivers/block/virtio_blk.ko", Deps: []string{"virtio"}},
		{Name: "xor", Path: k + "crypto/xor.ko"},
		{Name: "raid6_pq", Path: k + "lib/raid6/raid6_pq.ko"},
		{Name: "crc32c_generic", Path: k + "crypto/crc32c_generic.ko"},
		{Name: "libcrc32c", Path: k + "lib/libcrc32c.ko", Deps: []string{"crc32c_generic"}},
		{Name: "btrfs", Path: k + "fs/btrfs/btrfs.ko", Deps: []string{"xor", "raid6_pq", "libcrc32c"}},
		{Name: "i6300esb", Path: k + "drivers/watchdog/i6300esb.ko"},
	}
	p := loadPriority(plan)
	storage := []string{"scsi_common", "scsi_mod", "libata", "libahci", "ahci", "virtio", "virtio_blk"}
	for _, s := range storage {
		for _, o := range []string{"xor", "raid6_pq", "crc32c_generic", "libcrc32c", "btrfs", "i6300esb"} {
			if p[s] <= p[o] {
				t.Errorf("priority of %s %d, not above %s's %d", s, p[s], o, p[o])
			}
		}
	}
	for _, pair := range [][2]string{{"scsi_common", "virtio"}, {"scsi_common", "scsi_mod"}, {"crc32c_generic", "raid6_pq"}} {
		if p[pair[0]] <= p[pair[1]] {
			t.Errorf("%s (%d) should come before %s (%d): a longer chain waits above it", pair[0], p[pair[0]], pair[1], p[pair[1]])
		}
	}
}

// TestEagerSessionLimited: the init's module session limits the loads made
// with async_probe (kmod's TestSessionLimit proves the limit itself), not
// the drivers', and orders them by loadPriority.
func TestEagerSessionLimited(t *testing.T) {
	k := "/m/kernel/"
	plan := []bakedconf.Module{
		{Name: "libata", Path: k + "drivers/ata/libata.ko"},
		{Name: "ahci", Path: k + "drivers/ata/ahci.ko", Deps: []string{"libata"}},
		{Name: "squashfs", Path: k + "fs/squashfs/squashfs.ko"},
	}
	b := newBoot(time.Now())
	b.log = newLogger(&bytes.Buffer{})
	b.baked = &bakedconf.Config{Modules: plan}
	b.loadEagerWith(func(string, string) error { return nil }, newLiveSet(storageNames(plan)))
	b.waitBackground(-1)
	s := b.mods
	if s.Limit != runtime.NumCPU()+1 || s.Limited == nil {
		t.Fatalf("Limit %d (Limited set: %v), want %d", s.Limit, s.Limited != nil, runtime.NumCPU()+1)
	}
	for _, m := range plan {
		if want := m.Name != "ahci"; s.Limited(m) != want {
			t.Errorf("%s limited: %v, want %v", m.Name, !want, want)
		}
	}
	if !maps.Equal(s.Priority, loadPriority(plan)) {
		t.Errorf("Priority = %v, want loadPriority's %v", s.Priority, loadPriority(plan))
	}
}

// TestEagerModulesOnDemand: the file systems, dm-crypt and the cipher modes
// dm-crypt asks for by name load only when a boot needs them (a mount, a
// LUKS volume seen: dataModules), not with the eager plan; what they depend
// on stays eager only if something eager needs it too.
func TestEagerModulesOnDemand(t *testing.T) {
	plan := []bakedconf.Module{
		{Name: "virtio_blk"}, {Name: "squashfs"}, {Name: "dm_mod"},
		{Name: "dm_verity", Deps: []string{"dm_mod"}},
		{Name: "dm_crypt", Deps: []string{"dm_mod"}},
		{Name: "xts"}, {Name: "ecb"}, {Name: "cbc"},
		{Name: "raid6_pq"}, {Name: "btrfs", Deps: []string{"raid6_pq"}},
		{Name: "i6300esb"},
	}
	got := strings.Join(names(eagerModules(plan)), " ")
	if want := "virtio_blk squashfs dm_mod dm_verity"; got != want {
		t.Errorf("eagerModules = %q, want %q", got, want)
	}
	for _, m := range dataModules(plan, datapart.LUKS) {
		if m.Name == "raid6_pq" {
			return
		}
	}
	t.Errorf("dataModules(LUKS) = %v: want btrfs's chain with dm-crypt", names(dataModules(plan, datapart.LUKS)))
}

// TestIsStorageDriver: the drivers of buses and disks are storage drivers;
// file systems, the device mapper, libraries and every architecture's
// CPU-specific crypto are not (they would otherwise take a storage
// driver's priority and hold the choice of the system disk up).
func TestIsStorageDriver(t *testing.T) {
	for path, want := range map[string]bool{
		"/lib/modules/v/kernel/drivers/ata/ahci.ko":               true,
		"/lib/modules/v/kernel/drivers/nvme/host/nvme.ko":         true,
		"/lib/modules/v/kernel/drivers/md/dm-verity.ko":           false,
		"/lib/modules/v/kernel/fs/btrfs/btrfs.ko":                 false,
		"/lib/modules/v/kernel/arch/x86/crypto/aesni-intel.ko":    false,
		"/lib/modules/v/kernel/arch/s390/crypto/sha256_s390.ko":   false,
		"/lib/modules/v/kernel/arch/powerpc/crypto/sha256-spe.ko": false,
	} {
		if got := isStorageDriver(path); got != want {
			t.Errorf("isStorageDriver(%q) = %v, want %v", path, got, want)
		}
	}
}
