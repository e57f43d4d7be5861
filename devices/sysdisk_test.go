// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// disk makes the partitions of one disk, labelled in order.
func disk(name string, labels ...string) []DiskPart {
	var ps []DiskPart
	for i, l := range labels {
		ps = append(ps, DiskPart{Disk: name, Part: PartitionName(name, i+1), Label: l, PartUUID: fmt.Sprintf("%s-%d", name, i+1)})
	}
	return ps
}

func cat(parts ...[]DiskPart) []DiskPart { return slices.Concat(parts...) }

// clone is ps copied onto disk name, PARTUUIDs and all (dd of a disk).
func clone(ps []DiskPart, name string) []DiskPart {
	var out []DiskPart
	for i, p := range ps {
		p.Disk, p.Part = name, PartitionName(name, i+1)
		out = append(out, p)
	}
	return out
}

var ab = []string{"root-a", "verity-a", "root-b", "verity-b", "bootstate"}

func TestChooseSystemDisk(t *testing.T) {
	tests := []struct {
		name          string
		parts         []DiskPart
		root, loader  string
		want, wantErr string
		strays        string
	}{
		{name: "one disk", parts: disk("vda", ab...), want: "vda"},
		{name: "without bootstate", parts: disk("vda", "root-a", "verity-a", "root-b", "verity-b", "data"), want: "vda"},
		{name: "stray copies on a stick", parts: cat(disk("sda", "root-a", "verity-a", "data", "bootstate"), disk("vda", append(ab, "data")...)),
			want: "vda", strays: "sda1 (PARTLABEL=root-a on sda), sda2 (PARTLABEL=verity-a on sda), sda3 (PARTLABEL=data on sda), sda4 (PARTLABEL=bootstate on sda)"},
		{name: "other labels are not strays", parts: cat(disk("vda", ab...), disk("vdb", "EFI System", "home")), want: "vda"},
		{name: "partial disk only", parts: disk("vda", "root-a", "verity-a"),
			wantErr: "no system disk: no disk holds all of root-a, verity-a, root-b, verity-b (vda holds only root-a, verity-a)"},
		{name: "nothing", parts: disk("vda", "x"), wantErr: "no system disk: no disk holds all of root-a, verity-a, root-b, verity-b (no disk holds keel partitions)"},
		{name: "two candidates", parts: cat(disk("vdb", ab...), disk("vda", ab...)),
			wantErr: "more than one system disk: vda and vdb all hold root-a, verity-a, root-b, verity-b: keel takes its partitions from one disk only"},
		{name: "loader partition decides", parts: cat(disk("vdb", ab...), disk("vda", ab...)), loader: "VDB-3", want: "vdb",
			strays: "vda1 (PARTLABEL=root-a on vda), vda2 (PARTLABEL=verity-a on vda), vda3 (PARTLABEL=root-b on vda), vda4 (PARTLABEL=verity-b on vda), vda5 (PARTLABEL=bootstate on vda)"},
		{name: "loader partition elsewhere", parts: cat(disk("vdb", ab...), disk("vda", ab...), disk("sda", "EFI System")), loader: "sda-1",
			wantErr: "more than one system disk"},
		{name: "loader partition on a disk without the slots", parts: cat(disk("vda", ab...), disk("sda", "EFI System")), loader: "SDA-1", want: "vda"},
		{name: "loader partition decides against the first disk", parts: cat(disk("vda", ab...), disk("vdb", append([]string{"EFI System"}, ab...)...)), loader: "vdb-1", want: "vdb",
			strays: "vda1 (PARTLABEL=root-a on vda), vda2 (PARTLABEL=verity-a on vda), vda3 (PARTLABEL=root-b on vda), vda4 (PARTLABEL=verity-b on vda), vda5 (PARTLABEL=bootstate on vda)"},
		{name: "loader partition not seen yet", parts: disk("vda", ab...), loader: "nvme0n1-1",
			wantErr: "no system disk: the firmware's boot partition is on no disk seen yet: PARTUUID=nvme0n1-1 (LoaderDevicePartUUID"},
		{name: "loader partition on two disks", parts: cat(disk("vda", ab...), clone(disk("vda", ab...), "vdb")), loader: "vda-3",
			wantErr: "more than one system disk: vda and vdb all hold PARTUUID=vda-3, the partition the firmware loaded the kernel from"},
		{name: "label twice", parts: disk("vda", "root-a", "verity-a", "root-b", "verity-b", "data", "data"),
			wantErr: "system disk vda has 2 partitions labelled data (vda5, vda6): expected one each"},
		{name: "root= names the disk", parts: cat(disk("sda", "rootfs"), disk("vda", ab...)), root: "sda", want: "sda",
			strays: "vda1 (PARTLABEL=root-a on vda), vda2 (PARTLABEL=verity-a on vda), vda3 (PARTLABEL=root-b on vda), vda4 (PARTLABEL=verity-b on vda), vda5 (PARTLABEL=bootstate on vda)"},
		{name: "root= on a partial disk", parts: disk("sda", "rootfs", "data"), root: "sda", want: "sda"},
	}
	for _, tt := range tests {
		sd, err := ChooseSystemDisk(tt.parts, tt.root, tt.loader)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: ChooseSystemDisk = %+v, %v; want error %q", tt.name, sd, err, tt.wantErr)
			}
			continue
		}
		var strays []string
		for _, p := range sd.Strays {
			strays = append(strays, p.String())
		}
		if err != nil || sd.Disk != tt.want || strings.Join(strays, ", ") != tt.strays {
			t.Errorf("%s: ChooseSystemDisk = %q, strays %q, %v; want %q, strays %q", tt.name, sd.Disk, strays, err, tt.want, tt.strays)
		}
	}
	_, err := ChooseSystemDisk(cat(disk("vda", ab...), disk("vdb", ab...)), "", "")
	if !errors.Is(err, ErrTwoSystemDisks) {
		t.Errorf("two disks: %v, want ErrTwoSystemDisks", err)
	}
	if _, err := ChooseSystemDisk(nil, "", ""); !errors.Is(err, ErrNoSystemDisk) {
		t.Errorf("no disks: %v, want ErrNoSystemDisk", err)
	}
	_, err = ChooseSystemDisk(disk("vda", ab...), "", "sda-1")
	if !errors.Is(err, ErrNoSystemDisk) || !errors.Is(err, ErrLoaderDiskNotSeen) {
		t.Errorf("the loader's disk not seen: %v, want ErrNoSystemDisk and ErrLoaderDiskNotSeen", err)
	}
	sd, err := ChooseSystemDisk(cat(disk("vda", ab...), disk("vdb", ab...)), "", "vdb-2")
	if err != nil || sd.Disk != "vdb" || !sd.ByLoader || sd.LoaderCopies != nil {
		t.Errorf("the loader's disk among two: %+v, %v: want vdb, by the loader, no copies", sd, err)
	}
	if sd, err := ChooseSystemDisk(disk("vda", ab...), "", ""); err != nil || sd.ByLoader {
		t.Errorf("no loader: %+v, %v: want vda, by its labels", sd, err)
	}
	// The recheck after the choice, the disk pinned: a copy of the loader's
	// partition announced since is named.
	sd, err = ChooseSystemDisk(cat(disk("vda", ab...), clone(disk("vda", ab...), "sda")), "vda", "vda-1")
	if err != nil || sd.Disk != "vda" || !slices.Equal(sd.LoaderCopies, []string{"sda"}) {
		t.Errorf("a copy announced late: %+v, %v: want sda named as a copy", sd, err)
	}
}

// FuzzChooseSystemDisk: whatever the partitions, the answer does not
// depend on their order, a chosen disk (without root=) holds every slot
// label, and the strays are exactly the keel labels elsewhere.
func FuzzChooseSystemDisk(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 0, 3, 0, 4, 1, 0, 1, 5}, false, byte(0))
	f.Add([]byte{0, 0, 1, 0, 2, 0, 3, 1, 0, 1, 1, 1, 2, 1, 3}, false, byte(1))
	f.Add([]byte{2, 7, 2, 5}, true, byte(2))
	labels := []string{"root-a", "verity-a", "root-b", "verity-b", "bootstate", "data", "EFI System", ""}
	f.Fuzz(func(t *testing.T, b []byte, useRoot bool, loader byte) {
		var parts []DiskPart
		n := map[string]int{}
		for i := 0; i+1 < len(b) && len(parts) < 64; i += 2 {
			d := fmt.Sprintf("vd%c", 'a'+b[i]%4)
			n[d]++
			parts = append(parts, DiskPart{Disk: d, Part: PartitionName(d, n[d]), Label: labels[b[i+1]%byte(len(labels))], PartUUID: fmt.Sprint(b[i+1])})
		}
		root := ""
		if useRoot {
			root = fmt.Sprintf("vd%c", 'a'+loader%4)
		}
		loaderUUID := fmt.Sprint(loader % 16)
		if loader >= 128 {
			loaderUUID = ""
		}
		sd, err := ChooseSystemDisk(parts, root, loaderUUID)
		rev := slices.Clone(parts)
		slices.Reverse(rev)
		sd2, err2 := ChooseSystemDisk(rev, root, loaderUUID)
		if fmt.Sprint(sd, err) != fmt.Sprint(sd2, err2) {
			t.Fatalf("order matters: %v, %v vs %v, %v", sd, err, sd2, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrNoSystemDisk) && !errors.Is(err, ErrTwoSystemDisks) && !strings.Contains(err.Error(), "expected one each") {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		var have []string
		strays := 0
		for _, p := range parts {
			if p.Disk == sd.Disk {
				have = append(have, p.Label)
			} else if IsKeelLabel(p.Label) {
				strays++
			}
		}
		for _, l := range SlotLabels() {
			if root == "" && !slices.Contains(have, l) {
				t.Fatalf("chose %s, which lacks %s: %+v", sd.Disk, l, parts)
			}
		}
		if strays != len(sd.Strays) {
			t.Fatalf("%d strays reported, %d keel labels elsewhere", len(sd.Strays), strays)
		}
		holders := map[string]bool{}
		for _, p := range parts {
			if loaderUUID != "" && p.PartUUID == loaderUUID {
				holders[p.Disk] = true
			}
		}
		if root == "" && holders[sd.Disk] != sd.ByLoader {
			t.Fatalf("chose %s (by the loader: %v), holders of PARTUUID=%s %v: the loader's disk must decide when it is a candidate", sd.Disk, sd.ByLoader, loaderUUID, holders)
		}
		if root == "" && loaderUUID != "" && len(holders) == 0 {
			t.Fatalf("chose %s while the loader's partition %s is on no disk: want a wait", sd.Disk, loaderUUID)
		}
		if len(sd.LoaderCopies)+map[bool]int{true: 1}[holders[sd.Disk]] != len(holders) || slices.Contains(sd.LoaderCopies, sd.Disk) {
			t.Fatalf("loader copies %v of %s, holders %v", sd.LoaderCopies, sd.Disk, holders)
		}
	})
}

// TestWaitSystemDiskRegistry: the registry reads every disk's GPT, waits
// for a candidate, takes default labels from it only, and names the strays.
func TestWaitSystemDiskRegistry(t *testing.T) {
	dir := t.TempDir()
	sys := sfdiskImage(t, filepath.Join(dir), "label: gpt\n size=1M, name=root-a\n size=1M, name=verity-a\n size=1M, name=root-b\n size=1M, name=verity-b\n size=1M, name=data\n")
	stickDir := t.TempDir()
	stick := sfdiskImage(t, stickDir, "label: gpt\n size=1M, name=data\n size=1M, name=root-a\n")
	fs := newFakeSystem(t)
	for _, n := range []string{"sda1", "sda2", "vda1", "vda2", "vda3", "vda4", "vda5"} {
		fs.file(t, n, "")
	}
	fs.file(t, "sda", stick)
	fs.file(t, "vda", sys)
	// The stick comes first: "first seen wins" would take its data.
	fs.send(ev(t, "add", "sda", "", 0, ""), ev(t, "add", "sda1", "sda", 1, "data"), ev(t, "add", "sda2", "sda", 2, "root-a"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		sd  SystemDisk
		err error
	}
	ch := make(chan res, 1)
	go func() { sd, err := fs.reg.WaitSystemDisk(ctx, "", ""); ch <- res{sd, err} }()
	fs.send(ev(t, "add", "vda", "", 0, ""))
	for i, l := range []string{"root-a", "verity-a", "root-b", "verity-b", "data"} {
		fs.send(ev(t, "add", fmt.Sprintf("vda%d", i+1), "vda", i+1, l))
	}
	r := <-ch
	if r.err != nil || r.sd.Disk != "vda" || len(r.sd.Strays) != 2 || r.sd.Strays[0].Part != "sda1" || r.sd.Strays[1].Label != "root-a" {
		t.Fatalf("WaitSystemDisk = %+v, %v; want vda with sda1, sda2 stray", r.sd, r.err)
	}
	p, err := fs.reg.WaitForOnDisk(ctx, spec(t, "PARTLABEL=data"), "vda")
	if want := filepath.Join(fs.dev, "vda5"); err != nil || p != want {
		t.Errorf("WaitForOnDisk(data, vda) = %q, %v; want %q", p, err, want)
	}
	if p, _ := fs.reg.WaitFor(ctx, spec(t, "PARTLABEL=data")); p != filepath.Join(fs.dev, "sda1") {
		t.Errorf("WaitFor(data) = %q: an explicit DEVSPEC still matches any disk, first seen", p)
	}
	expired, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := fs.reg.WaitForOnDisk(expired, spec(t, "PARTLABEL=bootstate"), "vda"); err == nil {
		t.Error("WaitForOnDisk(bootstate, vda) found a partition the disk does not have")
	}
	if d := fs.reg.DiskOf(filepath.Join(fs.dev, "vda3")); d != "vda" {
		t.Errorf("DiskOf(vda3) = %q", d)
	}
	if sd, err := fs.reg.Recheck(context.Background(), "vda", ""); err != nil || len(sd.Strays) != 2 {
		t.Errorf("Recheck(vda): strays %+v, %v", sd.Strays, err)
	}
}

func TestWaitSystemDiskTimesOut(t *testing.T) {
	img := sfdiskImage(t, t.TempDir(), "label: gpt\n size=1M, name=root-a\n size=1M, name=verity-a\n")
	fs := newFakeSystem(t)
	fs.file(t, "vda", img)
	fs.send(ev(t, "add", "vda", "", 0, ""))
	// Consume takes the next event only after handling the last one.
	fs.sendHandled()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fs.reg.WaitSystemDisk(ctx, "", "")
	if !errors.Is(err, ErrNoSystemDisk) || !strings.Contains(err.Error(), "vda holds only root-a, verity-a") || !strings.HasSuffix(err.Error(), "(seen: vda)") {
		t.Errorf("err = %v", err)
	}
}

// TestSettle: Settle returns once every device sysfs lists was announced,
// and names the ones that were not when ctx ends first.
func TestSettle(t *testing.T) {
	sys := fakeSysfs(t, sysDev{name: "vda", major: 254}, sysDev{name: "vdb", major: 254, minor: 16})
	reg := NewRegistry(Options{DevDir: t.TempDir(), SysDir: sys})
	reg.Handle(ev(t, "add", "vda", "", 0, ""))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := reg.Settle(ctx); err == nil || !strings.HasPrefix(err.Error(), "vdb listed in sysfs but not announced") {
		t.Errorf("Settle before vdb: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- reg.Settle(context.Background()) }()
	reg.Handle(ev(t, "add", "vdb", "", 0, ""))
	if err := <-done; err != nil {
		t.Errorf("Settle: %v", err)
	}
}

// TestLoadSysfs: a registry read from sysfs resolves labels and disks as
// one fed by uevents.
func TestLoadSysfs(t *testing.T) {
	img := sfdiskImage(t, t.TempDir(), "label: gpt\n size=1M, name=root-a\n size=1M, name=verity-a\n size=1M, name=root-b\n size=1M, name=verity-b\n")
	sys := fakeSysfs(t, sysDev{name: "vda", major: 254},
		sysDev{name: "vda3", parent: "vda", major: 254, minor: 3, uevent: "PARTN=3\nPARTNAME=root-b\n"})
	dev := t.TempDir()
	if err := os.Symlink(img, filepath.Join(dev, "vda")); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(Options{DevDir: dev, SysDir: sys})
	if bs, err := reg.LoadSysfs(); err != nil || len(bs) != 2 {
		t.Fatalf("LoadSysfs = %+v, %v", bs, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sd, err := reg.WaitSystemDisk(ctx, "", "")
	if err != nil || sd.Disk != "vda" {
		t.Fatalf("WaitSystemDisk = %+v, %v", sd, err)
	}
	if p, err := reg.WaitForOnDisk(ctx, spec(t, "PARTLABEL=root-b"), "vda"); err != nil || p != filepath.Join(dev, "vda3") {
		t.Errorf("WaitForOnDisk(root-b) = %q, %v", p, err)
	}
	if !reg.HasPartLabel("vda", "verity-a") || reg.HasPartLabel("vda", "data") || reg.DiskOf(filepath.Join(dev, "vda3")) != "vda" {
		t.Error("HasPartLabel/DiskOf disagree with the GPT")
	}
}

// TestLateCandidates: a disk announced after the choice that holds every
// slot label is named; partial keel disks are only strays.
func TestLateCandidates(t *testing.T) {
	strays := []DiskPart{
		{Disk: "sdb", Part: "sdb1", Label: "root-a"}, {Disk: "sdb", Part: "sdb2", Label: "verity-a"},
		{Disk: "sdb", Part: "sdb3", Label: "root-b"}, {Disk: "sdb", Part: "sdb4", Label: "verity-b"},
		{Disk: "sdc", Part: "sdc1", Label: "data"}, {Disk: "sdc", Part: "sdc2", Label: "root-a"},
	}
	if got := LateCandidates(strays); len(got) != 1 || got[0] != "sdb" {
		t.Errorf("LateCandidates = %v, want [sdb]", got)
	}
	if got := LateCandidates(strays[4:]); len(got) != 0 {
		t.Errorf("a partial keel disk is a candidate: %v", got)
	}
}

// TestWaitSystemDiskForLoader: a stick holding every slot label is
// announced first; the firmware loaded the kernel from the ESP of the
// system disk (LoaderDevicePartUUID). The choice waits for the disk holding
// that partition and takes it, the stick's partitions strays; without
// the loader's partition two candidates were an error, and one announced
// later was chosen only if it came before the choice.
func TestWaitSystemDiskForLoader(t *testing.T) {
	const esp = "8f3a1c2e-5b6d-4e7f-9a0b-1c2d3e4f5a6b"
	slotsOnly := " size=1M, name=root-a\n size=1M, name=verity-a\n size=1M, name=root-b\n size=1M, name=verity-b\n"
	stick := sfdiskImage(t, t.TempDir(), "label: gpt\n"+slotsOnly)
	sys := sfdiskImage(t, t.TempDir(), "label: gpt\n size=1M, name=\"EFI System\", uuid="+strings.ToUpper(esp)+"\n"+slotsOnly)
	fs := newFakeSystem(t)
	fs.file(t, "sda", stick)
	fs.file(t, "vda", sys)
	fs.send(ev(t, "add", "sda", "", 0, ""))
	// Consume takes the next event only after handling the last one.
	fs.sendHandled()
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if sd, err := fs.reg.WaitSystemDisk(expired, "", esp); !errors.Is(err, ErrLoaderDiskNotSeen) {
		t.Fatalf("only the stick announced: %+v, %v: want the loader's disk waited for", sd, err)
	}
	if sd, err := fs.reg.WaitSystemDisk(expired, "", ""); err != nil || sd.Disk != "sda" {
		t.Fatalf("only the stick announced, no loader: %+v, %v: want the stick (the one-disk rule)", sd, err)
	}
	ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	ch := make(chan SystemDisk, 1)
	go func() {
		sd, err := fs.reg.WaitSystemDisk(ctx, "", esp)
		if err != nil {
			t.Errorf("WaitSystemDisk: %v", err)
		}
		ch <- sd
	}()
	fs.send(ev(t, "add", "vda", "", 0, ""))
	sd := <-ch
	if sd.Disk != "vda" || !sd.ByLoader || len(sd.Strays) != 4 || sd.Strays[0].Disk != "sda" {
		t.Fatalf("WaitSystemDisk = %+v: want vda, chosen by the loader's partition, the stick's four partitions strays", sd)
	}
	if _, err := fs.reg.WaitSystemDisk(ctx, "", ""); !errors.Is(err, ErrTwoSystemDisks) {
		t.Errorf("both announced, no loader: %v: want two candidates refused", err)
	}
}

// TestRecheckPendingTableObeysCtx: the report's look at the disks again
// waits for another waiter's read of a late disk's table only until its
// context ends, and names the disk; it used to wait for ever (a stray disk
// whose reads never end hung the boot before its report).
func TestRecheckPendingTableObeysCtx(t *testing.T) {
	img := sfdiskImage(t, t.TempDir(), "label: gpt\n size=1M, name=root-a\n size=1M, name=verity-a\n size=1M, name=bootstate\n")
	fs := newFakeSystem(t)
	fs.file(t, "vda", img)
	fs.file(t, "vdb", "")
	fs.send(ev(t, "add", "vda", "", 0, ""))
	fs.send(ev(t, "add", "vdb", "", 0, ""))
	fs.sendHandled()
	fs.reg.mu.Lock()
	fs.reg.devs["vdb"].probe = probeRunning // another waiter's read, stuck
	fs.reg.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		sd, err := fs.reg.Recheck(ctx, "vda", "")
		if sd.Disk != "vda" {
			err = fmt.Errorf("disk %q, want vda kept (and %v)", sd.Disk, err)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "the partition table of /dev/vdb is still being read") {
			t.Errorf("err = %v: want vdb named", err)
		}
	case <-time.After(time.Minute): // a hang guard, not a measure
		t.Fatal("Recheck waited for the other read of vdb's table past its context")
	}
	fs.reg.mu.Lock()
	fs.reg.devs["vdb"].probe = probeNone
	fs.reg.cond.Broadcast()
	fs.reg.mu.Unlock()
}

// TestWaitSystemDiskPendingTableObeysCtx: another waiter is reading a
// disk's partition table and the read does not complete (a disk that does
// not answer; here the read is marked running and never ends). A waiter
// whose context ends gives up, naming the disk; it used to wait for the
// other read for ever, past rd.timeout.
func TestWaitSystemDiskPendingTableObeysCtx(t *testing.T) {
	fs := newFakeSystem(t)
	fs.file(t, "vdb", "")
	fs.send(ev(t, "add", "vdb", "", 0, ""))
	fs.sendHandled()
	fs.reg.mu.Lock()
	fs.reg.devs["vdb"].probe = probeRunning // another waiter's read, stuck
	fs.reg.mu.Unlock()
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := fs.reg.WaitSystemDisk(expired, "", "")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNoSystemDisk) || !strings.Contains(err.Error(), "the partition table of /dev/vdb is still being read") {
			t.Errorf("err = %v: want no system disk, naming vdb", err)
		}
	case <-time.After(time.Minute): // a hang guard, not a measure
		t.Fatal("WaitSystemDisk with an expired context waited for the other read of vdb's table")
	}
	fs.reg.mu.Lock()
	fs.reg.devs["vdb"].probe = probeNone
	fs.reg.cond.Broadcast()
	fs.reg.mu.Unlock()
}
