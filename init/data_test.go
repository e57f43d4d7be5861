// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/datapart"
	"github.com/keel-boot/keel/devices"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
	"golang.org/x/sys/unix"
)

func TestDataPlan(t *testing.T) {
	for _, tc := range []struct {
		data string
		seen bool
		spec string
		wait bool
	}{
		{"", false, "PARTLABEL=data", false},
		{"", true, "PARTLABEL=data", true},
		{kargs.DataNone, true, "", false},
		{"UUID=1234", false, "UUID=1234", true},
		{"PARTLABEL=mine", true, "PARTLABEL=mine", true},
	} {
		spec, wait := dataPlan(tc.data, tc.seen)
		if spec != tc.spec || wait != tc.wait {
			t.Errorf("dataPlan(%q, %v) = %q, %v; want %q, %v", tc.data, tc.seen, spec, wait, tc.spec, tc.wait)
		}
	}
}

func TestLUKSTimeout(t *testing.T) {
	for _, tc := range []struct {
		cfg    kargs.Config
		locked bool
		want   time.Duration
	}{
		{kargs.Config{Emergency: kargs.EmergencyShell}, false, 0},
		{kargs.Config{}, false, 0},
		{kargs.Config{Emergency: kargs.EmergencyShell}, true, DefaultLUKSTimeout},
		{kargs.Config{Emergency: "reboot"}, false, DefaultLUKSTimeout},
		{kargs.Config{Emergency: "poweroff", LUKSTimeout: 10 * time.Second}, true, 10 * time.Second},
		{kargs.Config{LUKSTimeout: time.Hour}, false, time.Hour},
		// A shell that gives up after a minute: nobody is assumed.
		{kargs.Config{Emergency: kargs.EmergencyShell, EmergencyTimeout: time.Minute}, false, DefaultLUKSTimeout},
	} {
		if got := luksTimeout(tc.cfg, tc.locked); got != tc.want {
			t.Errorf("luksTimeout(%+v, locked %v) = %v, want %v", tc.cfg, tc.locked, got, tc.want)
		}
	}
}

func TestMayPrune(t *testing.T) {
	part := func(name string) devices.Device { return devices.Device{Type: "partition", PartName: name} }
	disk := []devices.Device{{Type: "disk", Name: "vda"}, part("root-a"), part("verity-a"), part("root-b"), part("verity-b"), part("data")}
	for _, tc := range []struct {
		name string
		cfg  kargs.Config
		mode string
		devs []devices.Device
		ok   bool
		why  string
	}{
		{"default labels, one disk", kargs.Config{}, "slot", disk, true, ""},
		{"root-a overridden", kargs.Config{RootA: "/dev/sdb1"}, "slot", disk, false, "overridden"},
		{"verity-a overridden", kargs.Config{VerityA: "/dev/sdb2"}, "slot", disk, false, "overridden"},
		{"the other slot overridden", kargs.Config{RootB: "/dev/sdb1"}, "slot", disk, true, ""},
		{"two disks with slot a", kargs.Config{}, "slot", append(slices.Clone(disk), part("root-a")), false, "2 partitions are labelled root-a"},
		{"label not seen", kargs.Config{}, "slot", disk[:1], false, "0 partitions are labelled root-a"},
		{"single image", kargs.Config{}, "single", disk, false, "not a slot boot"},
	} {
		ok, why := mayPrune(tc.cfg, tc.mode, "a", tc.devs)
		if ok != tc.ok || !strings.Contains(why, tc.why) {
			t.Errorf("%s: mayPrune = %v, %q; want %v, %q", tc.name, ok, why, tc.ok, tc.why)
		}
	}
}

// fakeMounts keeps the mounts in effect, as the kernel would.
type fakeMounts struct {
	active []mounts.Mount
	fail   func(source, target, data string) bool
}

func (f *fakeMounts) sys() mounts.Sys {
	return mounts.Sys{
		Mount: func(source, target, fstype string, flags uintptr, data string) error {
			if f.fail != nil && f.fail(source, target, data) {
				return unix.EIO
			}
			f.active = append(f.active, mounts.Mount{Source: source, Target: target, FSType: fstype, Data: data})
			return nil
		},
		Unmount: func(target string, _ int) error {
			for i := len(f.active) - 1; i >= 0; i-- {
				if f.active[i].Target == target {
					f.active = slices.Delete(f.active, i, i+1)
					return nil
				}
			}
			return unix.EINVAL
		},
		MkdirAll: os.MkdirAll,
	}
}

// TestVolatileFallbackIsComplete: whichever mount of the data partition in
// the new root fails (the persistent overlay, the /var bind, the /home
// bind after /var succeeded), the boot goes volatile with nothing of the
// data partition left mounted, loudly on the console and in the report.
func TestVolatileFallbackIsComplete(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(dataRoot, newRoot string) func(source, target, data string) bool
	}{
		{"persistent overlay", func(dataRoot, _ string) func(string, string, string) bool {
			return func(_, _, data string) bool { return strings.Contains(data, dataRoot) }
		}},
		{"/var bind", func(_, newRoot string) func(string, string, string) bool {
			return func(_, target, _ string) bool { return target == filepath.Join(newRoot, "var") }
		}},
		{"/home bind after /var", func(_, newRoot string) func(string, string, string) bool {
			return func(_, target, _ string) bool { return target == filepath.Join(newRoot, "home") }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			layout := testLayout(tmp)
			dataRoot := filepath.Join(tmp, "data")
			write := func(p string, mode os.FileMode) {
				must(t, os.MkdirAll(filepath.Dir(p), 0o755))
				must(t, os.WriteFile(p, nil, mode))
			}
			write(filepath.Join(layout.NewRoot, "sbin/init"), 0o755)
			must(t, os.MkdirAll(dataRoot, 0o755))
			fm := &fakeMounts{fail: tc.fail(dataRoot, layout.NewRoot)}
			var console bytes.Buffer
			b := &boot{
				log: newLogger(&console), baked: &bakedconf.Config{}, mods: &kmod.Session{},
				cfg:   kargs.Config{Init: "/sbin/init"},
				rep:   &report.Report{Mode: "slot", Slot: "a"},
				stack: &mounts.Stack{Sys: fm.sys()},
				bs:    &bootState{}, // no image marked good yet: no /etc merge
			}
			b.log.setLevel(prioWarn) // quiet: the warning must still reach the console
			d := &dataState{dev: "/dev/vdb", fstype: datapart.Ext4, root: dataRoot, stack: &mounts.Stack{Sys: fm.sys()}}
			must(t, d.stack.Do(datapart.Mount(d.dev, d.fstype, d.root)))
			b.data, b.rep.Data = d, &report.Data{Device: d.dev}

			if err := b.assemble(layout, "img1"); err != nil {
				t.Fatalf("assemble: %v", err)
			}
			for _, m := range fm.active {
				if m.Source == d.dev || strings.Contains(m.Source, dataRoot) || strings.Contains(m.Data, dataRoot) {
					t.Errorf("left mounted after the volatile fallback: %+v", m)
				}
			}
			if b.data != nil || !b.rep.Data.Volatile || b.rep.Overlay != mounts.OverlayTmpfs || len(b.rep.Data.Binds) != 0 || b.rep.Data.Upper != "" {
				t.Errorf("report %+v, overlay %s: want volatile, tmpfs, no binds, no upper", b.rep.Data, b.rep.Overlay)
			}
			if !strings.Contains(console.String(), "keel: WARNING: DATA PARTITION /dev/vdb NOT USED, BOOTING VOLATILE") {
				t.Errorf("console %q: want the volatile warning", console.String())
			}
			if len(b.rep.Warnings) == 0 || !strings.Contains(b.rep.Warnings[0], "BOOTING VOLATILE") {
				t.Errorf("report warnings %q", b.rep.Warnings)
			}
		})
	}
}

// TestVolatileBootWithData: the same assembly with nothing failing keeps
// the persistent upper and both binds (the test above is not vacuous).
func TestAssembleWithData(t *testing.T) {
	b, layout, _ := dataBoot(t, "a", kargs.Config{Init: "/sbin/init"}, &bootState{}, &bytes.Buffer{})
	must(t, b.assemble(layout, "img1"))
	if b.rep.Overlay != mounts.OverlayPersistent || fmt.Sprint(b.rep.Data.Binds) != "[/var /home]" || b.rep.Data.Volatile {
		t.Errorf("overlay %s, data %+v: want persistent with both binds", b.rep.Overlay, b.rep.Data)
	}
}

// testLayout is the layout of a boot over fake mounts in tmp. Its new root
// has no /var or /home: the binds make them, as mounts made a missing
// mount point before they were resolved in the new root.
func testLayout(tmp string) mounts.Layout {
	return mounts.Layout{Lower: filepath.Join(tmp, "lower"), Upper: filepath.Join(tmp, "upper"), NewRoot: filepath.Join(tmp, "newroot")}
}

// dataBoot is a boot of slot with the given configuration and boot state,
// logging to console, over fake mounts in a temporary directory: a new
// root holding /sbin/init, an image with an empty /etc, and an ext4 data
// partition mounted at dataRoot.
func dataBoot(t *testing.T, slot string, cfg kargs.Config, bs *bootState, console *bytes.Buffer) (b *boot, layout mounts.Layout, dataRoot string) {
	t.Helper()
	tmp := t.TempDir()
	layout = testLayout(tmp)
	dataRoot = filepath.Join(tmp, "data")
	must(t, os.MkdirAll(filepath.Join(layout.NewRoot, "sbin"), 0o755))
	must(t, os.WriteFile(filepath.Join(layout.NewRoot, "sbin/init"), nil, 0o755))
	must(t, os.MkdirAll(filepath.Join(layout.Lower, "etc"), 0o755))
	must(t, os.MkdirAll(dataRoot, 0o755))
	fm := &fakeMounts{}
	b = &boot{log: newLogger(console), baked: &bakedconf.Config{}, mods: &kmod.Session{},
		cfg: cfg, rep: &report.Report{Mode: "slot", Slot: slot, Data: &report.Data{}},
		stack: &mounts.Stack{Sys: fm.sys()}, bs: bs}
	b.data = &dataState{dev: "/dev/vdb", fstype: datapart.Ext4, root: dataRoot, stack: &mounts.Stack{Sys: fm.sys()}}
	return b, layout, dataRoot
}

// TestVolatileAttemptGivesDataBack: slot a's attempt goes volatile (its
// /var bind fails: an unreadable sector in a's image looks the same) and
// then fails (no init); slot b's attempt gets the data partition back, with
// its persistent upper and binds. The partition used to stay unmounted for
// every later attempt, so one slot's fault kept the machine's data out of
// the good slot's boot, at every boot. An attempt that succeeds volatile
// has the partition unmounted once the root is chosen.
func TestVolatileAttemptGivesDataBack(t *testing.T) {
	tmp := t.TempDir()
	layout := testLayout(tmp)
	dataRoot := filepath.Join(tmp, "data")
	must(t, os.MkdirAll(dataRoot, 0o755))
	must(t, os.MkdirAll(layout.NewRoot, 0o755))
	fm := &fakeMounts{fail: func(_, target, _ string) bool { return target == filepath.Join(layout.NewRoot, "var") }}
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), baked: &bakedconf.Config{}, mods: &kmod.Session{},
		cfg: kargs.Config{Init: "/sbin/init"}, rep: &report.Report{Mode: "slot", Slot: "a"},
		stack: &mounts.Stack{Sys: fm.sys()}, bs: &bootState{}}
	d := &dataState{dev: "/dev/vdb", fstype: datapart.Ext4, root: dataRoot, stack: &mounts.Stack{Sys: fm.sys()}}
	must(t, d.stack.Do(datapart.Mount(d.dev, d.fstype, d.root)))
	b.data, b.rep.Data = d, &report.Data{Device: d.dev}
	dataMounted := func() bool {
		return slices.ContainsFunc(fm.active, func(m mounts.Mount) bool { return m.Source == d.dev })
	}

	b.inAttempt = true // slot a: volatile, then no init
	if err := b.assemble(layout, "img-a"); err == nil {
		t.Fatal("slot a assembled without an init")
	}
	b.inAttempt = false
	if b.data != nil || !dataMounted() {
		t.Fatalf("after slot a's attempt: data %+v, data partition mounted %v: want it set aside, still mounted", b.data, dataMounted())
	}
	for _, e := range b.stack.Undo() { // as trySlot undoes a failed attempt
		t.Fatal(e)
	}

	fm.fail = nil // slot b: its image reads
	must(t, os.MkdirAll(filepath.Join(layout.NewRoot, "sbin"), 0o755))
	must(t, os.WriteFile(filepath.Join(layout.NewRoot, "sbin/init"), nil, 0o755))
	b.rep.Slot = "b"
	b.reclaimData("b")
	b.inAttempt = true
	must(t, b.assemble(layout, "img-b"))
	b.inAttempt = false
	b.settleData()
	if b.data != d || !dataMounted() || b.rep.Overlay != mounts.OverlayPersistent || b.rep.Data.Volatile || fmt.Sprint(b.rep.Data.Binds) != "[/var /home]" {
		t.Errorf("slot b: data %+v (mounted %v), overlay %s, report %+v: want the data partition back, persistent, both binds", b.data, dataMounted(), b.rep.Overlay, b.rep.Data)
	}
	if !strings.Contains(console.String(), "data partition /dev/vdb: used again for slot b") {
		t.Errorf("console %q: want the partition's return said", console.String())
	}

	// An attempt that succeeds volatile: unmounted once the root is chosen.
	for _, e := range b.stack.Undo() {
		t.Fatal(e)
	}
	fm.fail = func(_, target, _ string) bool { return target == filepath.Join(layout.NewRoot, "var") }
	b.inAttempt = true
	must(t, b.assemble(layout, "img-b"))
	b.inAttempt = false
	b.settleData()
	if b.data != nil || dataMounted() || !b.rep.Data.Volatile {
		t.Errorf("a volatile attempt chosen: data %+v, mounted %v, report %+v: want the partition unmounted, volatile", b.data, dataMounted(), b.rep.Data)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzDataDecisions feeds the data phase's decisions from any command
// line: data=none is the only way to no data partition; a DEVSPEC is
// always required; a locked initramfs or an unattended emergency policy
// never waits forever for a passphrase; overridden slot devices never
// allow pruning.
func FuzzDataDecisions(f *testing.F) {
	for _, s := range []string{"", "data=none", "data=UUID=1 rd.luks.timeout=0", "root-a=/dev/sdb1 rd.emergency=reboot",
		"slot=b verity-b=PARTLABEL=x", "root=LABEL=os rd.luks.timeout=604800", "bootstate=/dev/vda9 slot=a"} {
		f.Add(s, false, true)
	}
	f.Fuzz(func(t *testing.T, cmdline string, locked, seen bool) {
		cfg, _ := kargs.Parse(cmdline, kargs.Defaults(), locked)
		spec, required := dataPlan(cfg.Data, seen)
		if (spec == "") != (cfg.Data == kargs.DataNone) || (cfg.Data != "" && cfg.Data != kargs.DataNone && !required) {
			t.Errorf("data=%q seen=%v: plan %q, required %v", cfg.Data, seen, spec, required)
		}
		to := luksTimeout(cfg, locked)
		if to < 0 || ((locked || cfg.Emergency != kargs.EmergencyShell || cfg.EmergencyTimeout > 0) && to == 0) {
			t.Errorf("locked=%v emergency=%q rd.luks.timeout=%v: prompt timeout %v", locked, cfg.Emergency, cfg.LUKSTimeout, to)
		}
		for _, slot := range []string{"a", "b"} {
			part := func(n string) devices.Device { return devices.Device{Type: "partition", PartName: n} }
			devs := []devices.Device{part("root-" + slot), part("verity-" + slot)}
			ok, _ := mayPrune(cfg, "slot", slot, devs)
			overridden := cfg.SlotRoot(slot) != "" || cfg.SlotVerity(slot) != ""
			if ok == overridden {
				t.Errorf("slot %s overridden=%v: mayPrune %v", slot, overridden, ok)
			}
		}
	})
}

func TestDataModules(t *testing.T) {
	plan := []bakedconf.Module{{Name: "xor"}, {Name: "raid6_pq"}, {Name: "btrfs", Deps: []string{"xor", "raid6_pq"}},
		{Name: "ext4"}, {Name: "dm_mod"}, {Name: "dm_crypt", Deps: []string{"dm_mod"}}, {Name: "xts"}, {Name: "ecb"}}
	for _, tt := range []struct {
		plan   []bakedconf.Module
		fstype string
		want   string
	}{
		{plan, "btrfs", "xor raid6_pq btrfs"},
		{plan, "ext4", "ext4"},
		{plan, datapart.LUKS, "xor raid6_pq btrfs dm_mod dm_crypt xts ecb"},
		{plan[3:], datapart.LUKS, "ext4 dm_mod dm_crypt xts ecb"},
		{plan, "xfs", ""},
	} {
		if got := strings.Join(names(dataModules(tt.plan, tt.fstype)), " "); got != tt.want {
			t.Errorf("dataModules(%s) = %q, want %q", tt.fstype, got, tt.want)
		}
	}
	if got := firstDataFS(plan[:2]); got != "" {
		t.Errorf("firstDataFS without btrfs or ext4 = %q, want none", got)
	}
}

// FuzzDataModules: whatever type the probe of the data partition reports,
// the prefetch loads a part of the plan closed under dependencies.
func FuzzDataModules(f *testing.F) {
	for _, s := range []string{"btrfs", "ext4", datapart.LUKS, "", "xfs", "dm_crypt"} {
		f.Add(s)
	}
	plan := []bakedconf.Module{{Name: "xor"}, {Name: "raid6_pq"}, {Name: "btrfs", Deps: []string{"xor", "raid6_pq"}},
		{Name: "ext4"}, {Name: "dm_mod"}, {Name: "dm_crypt", Deps: []string{"dm_mod"}}, {Name: "xts"}, {Name: "ecb"}}
	f.Fuzz(func(t *testing.T, fstype string) {
		got := dataModules(plan, fstype)
		in := map[string]bool{}
		for _, m := range got {
			in[m.Name] = true
		}
		for _, m := range got {
			for _, d := range m.Deps {
				if !in[d] {
					t.Errorf("dataModules(%q) has %s without its dependency %s", fstype, m.Name, d)
				}
			}
		}
		if fstype == datapart.LUKS && (!in["dm_crypt"] || !in["xts"] || !in["ecb"]) {
			t.Errorf("dataModules(LUKS) = %v: want dm_crypt, xts and ecb", names(got))
		}
	})
}

// TestDataMountCounted: the mount of the data partition is made durable in
// the boot state before it begins, so that a mount that never returns (a
// hang, a kernel panic) is seen by the next boots; after
// bootstate.DataMountLimit of them in a row the partition is left alone,
// volatile and loudly, before it is even probed. slot= and a count in
// memory leave the boot state alone.
func TestDataMountCounted(t *testing.T) {
	img := filepath.Join(t.TempDir(), "data.img")
	sb := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint16(sb[1024+56:], 0xEF53)
	le.PutUint32(sb[1024+92:], 0x4)      // has_journal
	le.PutUint32(sb[1024+96:], 0x40|0x2) // extents, filetype: ext4
	must(t, os.WriteFile(img, sb, 0o600))

	for _, tc := range []struct {
		name     string
		before   uint8
		slot     string
		inMemory bool
		mounted  bool  // the data file system was mounted
		atMount  uint8 // unfinished mounts stored when the mount began
		stored   uint8 // stored after mountData
	}{
		{name: "first", before: 0, mounted: true, atMount: 1, stored: 1},
		{name: "after a power cut in one", before: 1, mounted: true, atMount: 2, stored: 2},
		{name: "at the limit", before: bootstate.DataMountLimit, stored: bootstate.DataMountLimit},
		{name: "slot= at the limit", before: bootstate.DataMountLimit, slot: "b", mounted: true, atMount: bootstate.DataMountLimit, stored: bootstate.DataMountLimit},
		{name: "in memory", before: 0, inMemory: true, mounted: true, atMount: 0, stored: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := bootstate.NewMemStore(bootstate.BootStateMinSize)
			st := bootstate.DefaultState()
			st.UnfinishedDataMounts = tc.before
			must(t, bootstate.Save(store, &st))
			stored := func() uint8 {
				s, _, err := bootstate.Load(store)
				must(t, err)
				return s.UnfinishedDataMounts
			}
			atMount := uint8(255)
			fm := &fakeMounts{fail: func(source, target, data string) bool {
				atMount = stored()
				return false
			}}
			sys := fm.sys()
			sys.MkdirAll = func(string, os.FileMode) error { return nil } // not the host's /run/keel/data
			var console bytes.Buffer
			b := &boot{log: newLogger(&console), baked: &bakedconf.Config{}, mods: &kmod.Session{},
				cfg: kargs.Config{Slot: tc.slot}, rep: &report.Report{}, stack: &mounts.Stack{Sys: sys},
				bs: &bootState{store: store, state: st, inMemory: tc.inMemory}}
			d, err := b.mountData(img)
			switch {
			case tc.mounted && (err != nil || d == nil || len(fm.active) != 1):
				t.Fatalf("mountData: %v, mounts %+v: want the data partition mounted", err, fm.active)
			case !tc.mounted && (err == nil || len(fm.active) != 0):
				t.Fatalf("mountData: %v, mounts %+v: want it left alone", err, fm.active)
			case !tc.mounted && !strings.Contains(err.Error(), "the last 2 boots began mounting it and never finished with it"):
				t.Errorf("error %q: want it to say why", err)
			}
			if tc.mounted && atMount != tc.atMount {
				t.Errorf("unfinished mounts stored when the mount began: %d, want %d", atMount, tc.atMount)
			}
			if got := stored(); got != tc.stored {
				t.Errorf("unfinished mounts stored after: %d, want %d", got, tc.stored)
			}
		})
	}
}

// TestSetAsideFailureFreezesUpper: a boot of the last good image whose
// trial's upper (slot b) cannot be set aside (here @overlay/b/.set-aside is
// a file) mounts its own upper read-only under tmpfs, as when the boot
// state is unavailable: a change to /etc made now would be missing from
// the trial's /etc, then lost once it is marked good and this upper pruned.
// It used to be only a warning, the upper written. The freeze is that
// attempt's: should a fail later in the boot, b's attempt that follows is
// not frozen (a review found the first form carried it over).
func TestSetAsideFailureFreezesUpper(t *testing.T) {
	tmp := t.TempDir()
	layout := testLayout(tmp)
	dataRoot := filepath.Join(tmp, "data")
	must(t, os.MkdirAll(filepath.Join(layout.NewRoot, "sbin"), 0o755))
	must(t, os.WriteFile(filepath.Join(layout.NewRoot, "sbin/init"), nil, 0o755))
	for _, d := range []string{"@overlay/a/img1/upper", "@overlay/a/img1/work", "@overlay/b/B1/upper/etc", "@overlay/b/B1/work"} {
		must(t, os.MkdirAll(filepath.Join(dataRoot, d), 0o755))
	}
	must(t, os.WriteFile(filepath.Join(dataRoot, "@overlay/b/B1", datapart.EtcMergeFile), []byte(`{"from_slot":"a","from_image":"img1"}`), 0o644))
	must(t, os.WriteFile(filepath.Join(dataRoot, "@overlay/b", datapart.SetAside), []byte("in the way"), 0o644))
	s := bootstate.DefaultState()
	s.Initialised = true
	s.Slots[0] = bootstate.SlotState{Priority: 2, Good: true}
	s.Slots[1] = bootstate.SlotState{Priority: 1, Tries: 2}
	s.LastGood = bootstate.LastGood{Slot: bootstate.SlotA, ImageID: "img1"}
	fm := &fakeMounts{}
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), baked: &bakedconf.Config{}, mods: &kmod.Session{},
		cfg: kargs.Config{Init: "/sbin/init"}, rep: &report.Report{Mode: "slot", Slot: "a", Data: &report.Data{}},
		stack: &mounts.Stack{Sys: fm.sys()}, bs: &bootState{store: bootstate.NewMemStore(bootstate.BootStateMinSize), state: s}}
	b.data = &dataState{dev: "/dev/vdb", fstype: datapart.Ext4, root: dataRoot, stack: &mounts.Stack{Sys: fm.sys()}}
	must(t, b.assemble(layout, "img1"))
	if !b.rep.Data.UpperReadOnly || !strings.Contains(console.String(), "could not be set aside") {
		t.Fatalf("upper read-only %v, console %q: want slot a's upper frozen, and why", b.rep.Data.UpperReadOnly, console.String())
	}
	b.rep.Slot, b.rep.Data = "b", &report.Data{}
	b.stack = &mounts.Stack{Sys: fm.sys()}
	must(t, b.assemble(layout, "B1"))
	if b.rep.Data.UpperReadOnly {
		t.Errorf("slot b's upper frozen by slot a's set-aside failure: %q", console.String())
	}
}

// TestNonPersistentOverlayReportsNoUpper: with a data partition but
// overlay=tmpfs or overlay=off, / is not on the data partition, and
// boot.json names no upper: slotctl mark-good reads data.upper to decide
// whether this boot's /etc was kept, and moved the last good image (whose
// upper holds the machine's /etc) to an image whose upper was never
// written, so that the next boot started it empty and the next update
// pruned the configuration.
func TestNonPersistentOverlayReportsNoUpper(t *testing.T) {
	for _, mode := range []string{mounts.OverlayTmpfs, mounts.OverlayOff} {
		b, layout, _ := dataBoot(t, "b", kargs.Config{Init: "/sbin/init", Overlay: mode}, &bootState{}, &bytes.Buffer{})
		must(t, b.assemble(layout, "img-b"))
		if b.rep.Overlay != mode || b.rep.Data.Upper != "" || b.rep.Data.FreshUpper {
			t.Errorf("overlay=%s: report overlay %q, data.upper %q, fresh %v: want no upper named", mode, b.rep.Overlay, b.rep.Data.Upper, b.rep.Data.FreshUpper)
		}
	}
}

// TestNoLastGoodFindsTheConfiguration: the boot state is sound but names no
// image last marked good (a version 1 record, a bootstate partition
// flashed blank while the data partition was kept), and the data partition
// holds other images' uppers, one of which holds the machine's /etc. A new
// image's upper used to be made empty, nothing merged. Through assemble
// (no devices here, so no slot's header reads: TestRecoverLastGood has the
// other slot's image), the /etc merge reads the upper the data partition's
// copy of the boot state names; with none, a trial's upper set aside only,
// or no bootstate partition, the upper is made unmerged, as before.
func TestNoLastGoodFindsTheConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		uppers []string // under @overlay, each holding etc/hostname = its name
		copyLG string   // the copy's last good image, "" for no copy
		from   string   // the upper merged from; "" for none (made unmerged)
		// noBootState: the system disk has no bootstate partition, so no
		// image is ever marked good.
		noBootState bool
	}{
		{"the copy's last good", []string{"a/img-a", "b/img-b0"}, "a/img-a", "a/img-a", false},
		{"the copy's last good gone", []string{"a/img-a"}, "a/img-x", "", false},
		{"no copy", []string{"a/img-a"}, "", "", false},
		{"a trial's upper set aside only", []string{"a/.set-aside/img-a"}, "a/img-a", "", false},
		{"no bootstate partition", []string{"a/img-a"}, "a/img-a", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := bootstate.DefaultState()
			st.Initialised = true // read from the partition: no last good image
			var console bytes.Buffer
			// verity=off: the merge opens no old image as its base.
			b, layout, dataRoot := dataBoot(t, "b", kargs.Config{Init: "/sbin/init", VerityOff: true}, &bootState{state: st, inMemory: tc.noBootState}, &console)
			b.rep.ImageID = "img-b"
			for _, u := range tc.uppers {
				dir := filepath.Join(dataRoot, datapart.Overlay, u)
				must(t, os.MkdirAll(filepath.Join(dir, "upper/etc"), 0o755))
				must(t, os.MkdirAll(filepath.Join(dir, "work"), 0o755))
				must(t, os.WriteFile(filepath.Join(dir, "upper/etc/hostname"), []byte(u+"\n"), 0o644))
			}
			if tc.copyLG != "" {
				c := bootstate.DefaultState()
				slot, id, _ := strings.Cut(tc.copyLG, "/")
				c.LastGood = bootstate.LastGood{Slot: bootstate.Slot(slot), ImageID: id}
				must(t, os.WriteFile(filepath.Join(dataRoot, bootstate.CopyName), bootstate.MarshalRecord(c), 0o644))
			}
			must(t, b.assemble(layout, "img-b"))
			newUpper, err := datapart.UpperDir(dataRoot, "b", "img-b")
			must(t, err)
			if tc.from == "" {
				if !exists(newUpper) || b.rep.Overlay != mounts.OverlayPersistent || b.rep.EtcMerge != nil {
					t.Errorf("upper made %v, overlay %s, merge %+v: want an upper made, unmerged", exists(newUpper), b.rep.Overlay, b.rep.EtcMerge)
				}
				return
			}
			got, err := os.ReadFile(filepath.Join(newUpper, "upper/etc/hostname"))
			if err != nil || string(got) != tc.from+"\n" || b.rep.Overlay != mounts.OverlayPersistent || b.rep.EtcMerge == nil || b.rep.EtcMerge.FromImage != path.Base(tc.from) {
				t.Errorf("new upper's etc/hostname %q (%v), overlay %s, merge %+v: want %s's, merged", got, err, b.rep.Overlay, b.rep.EtcMerge, tc.from)
			}
			if !strings.Contains(console.String(), "the boot state names no image last marked good: the /etc merge reads the upper of "+path.Base(tc.from)) {
				t.Errorf("console %q: want the merge's source named", console.String())
			}
		})
	}
}

// TestRecoverLastGood: with no last good image recorded, the merge's
// source is the upper the data partition's copy of the boot state names,
// else the upper of the image the other slot holds now; never an upper of
// the booted slot's earlier images (they are pruned, as always), nor one of
// an image no slot holds.
func TestRecoverLastGood(t *testing.T) {
	for _, tc := range []struct {
		name    string
		uppers  []string          // slot/image id
		copyLG  string            // the copy's last good image, "" for no copy
		current map[string]string // slot → the image id in its header
		want    string            // slot/image id, "" for none
		retired bool              // the boot state retired slot a
	}{
		{"the other slot's image", []string{"a/A1", "b/B0"}, "", map[string]string{"a": "A1", "b": "B1"}, "a/A1", false},
		{"the other slot's image, older uppers", []string{"a/A0", "a/A1", "b/B0"}, "", map[string]string{"a": "A1"}, "a/A1", false},
		{"the other slot holds an image without its upper", []string{"a/A0", "b/B0"}, "", map[string]string{"a": "A1"}, "", false},
		{"the other slot unreadable", []string{"a/A1"}, "", map[string]string{}, "", false},
		{"the booted slot's earlier image only", []string{"b/B0"}, "", map[string]string{"a": "A1", "b": "B0"}, "", false},
		{"the copy's last good first", []string{"a/A1", "b/B0"}, "b/B0", map[string]string{"a": "A1"}, "b/B0", false},
		{"the copy's last good gone", []string{"a/A1"}, "b/B0", map[string]string{"a": "A1"}, "a/A1", false},
		{"the other slot retired", []string{"a/A1"}, "", map[string]string{"a": "A1"}, "", true},
		{"the copy's last good in a retired slot", []string{"a/A1"}, "a/A1", map[string]string{}, "a/A1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			var ups []datapart.ImageUpper
			for _, u := range tc.uppers {
				slot, id, _ := strings.Cut(u, "/")
				ups = append(ups, datapart.ImageUpper{Slot: slot, ImageID: id, Dir: filepath.Join(root, datapart.Overlay, u)})
			}
			if tc.copyLG != "" {
				c := bootstate.DefaultState()
				slot, id, _ := strings.Cut(tc.copyLG, "/")
				c.LastGood = bootstate.LastGood{Slot: bootstate.Slot(slot), ImageID: id}
				must(t, os.WriteFile(filepath.Join(root, bootstate.CopyName), bootstate.MarshalRecord(c), 0o644))
			}
			b := &boot{log: newLogger(&bytes.Buffer{}), rep: &report.Report{Mode: "slot", Slot: "b", ImageID: "B1"}}
			state := bootstate.DefaultState()
			if tc.retired {
				state.Slots[0] = bootstate.SlotState{Reason: bootstate.ReasonTriesExhausted}
			}
			slot, id, ok := b.recoverLastGood(root, ups, state, func(s string) string { return tc.current[s] })
			if got := slot + "/" + id; ok != (tc.want != "") || ok && got != tc.want {
				t.Errorf("recoverLastGood = %s, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// TestVolatileClosesTheMapping: a data partition given up after it was
// unlocked has its dm-crypt device removed once its mount is undone, not
// left open for the whole uptime outside the shutdown's undo record; one
// set aside for the other slot's attempt keeps it.
func TestVolatileClosesTheMapping(t *testing.T) {
	old := closeDM
	t.Cleanup(func() { closeDM = old })
	var closed []string
	closeDM = func(name string) error { closed = append(closed, name); return nil }
	b, _, _ := dataBoot(t, "a", kargs.Config{Init: "/sbin/init"}, &bootState{}, &bytes.Buffer{})
	b.data.mapped = dataMapping
	d := b.data
	b.inAttempt = true
	b.volatile("/dev/vda6", errors.New("x"))
	if len(closed) != 0 || d.mapped == "" {
		t.Fatalf("set aside for the other slot's attempt: closed %v: want the mapping kept", closed)
	}
	b.inAttempt = false
	b.data = d
	b.volatile("/dev/vda6", errors.New("x"))
	if fmt.Sprint(closed) != "[keel-data]" || d.mapped != "" {
		t.Errorf("given up: closed %v, mapped %q: want keel-data removed", closed, d.mapped)
	}
}
