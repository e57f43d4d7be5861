// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
	slotkeys "github.com/keel-boot/keel/slots/keys"
	"golang.org/x/sys/unix"
)

// makeDisk builds a GPT disk image with keel's partitions using sfdisk.
func makeDisk(t *testing.T, dir string, rootSize string) string {
	t.Helper()
	return makeDiskState(t, dir, rootSize, "1MiB")
}

// makeDiskState is makeDisk with a bootstate partition of stateSize.
func makeDiskState(t *testing.T, dir, rootSize, stateSize string) string {
	t.Helper()
	needTool(t, "sfdisk")
	disk := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 32<<20); err != nil {
		t.Fatal(err)
	}
	script := "label: gpt\n" +
		"size=" + rootSize + ", name=root-a\nsize=1MiB, name=verity-a\n" +
		"size=" + rootSize + ", name=root-b\nsize=1MiB, name=verity-b\n" +
		"size=" + stateSize + ", name=bootstate\n"
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return disk
}

// sealedImage makes and seals a SquashFS image in its own directory.
func sealedImage(t *testing.T, dir, name, key string) (img, verity string) {
	t.Helper()
	sub := filepath.Join(dir, name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	img = makeImage(t, sub)
	verity = filepath.Join(sub, "verity.img")
	mustRun(t, nil, "seal", "--image", img, "--out", verity, "--key", key, "--image-id", name)
	return img, verity
}

// statusJSON runs status --json with args.
func statusJSON(t *testing.T, args ...string) statusView {
	t.Helper()
	var v statusView
	out := mustRun(t, nil, append([]string{"status", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return v
}

func slotStates(v statusView) [2]bootstate.SlotState {
	var s [2]bootstate.SlotState
	for i, x := range v.Slots {
		s[i] = bootstate.SlotState{Priority: x.Priority, Tries: x.Tries, Good: x.Good, Reason: x.Reason}
	}
	return s
}

func writeReport(t *testing.T, dir string, r report.Report) string {
	t.Helper()
	path := filepath.Join(dir, "boot.json")
	if err := r.Write(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBootCommandsOnDisk drives install, status, mark-good, mark-bad and
// set-next on a disk image file.
func TestBootCommandsOnDisk(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	imgA, verA := sealedImage(t, dir, "image-a", key)
	imgB, verB := sealedImage(t, dir, "image-b", key)

	v := statusJSON(t, "--disk", disk)
	if v.Initialised || slotStates(v) != bootstate.DefaultState().Slots || !strings.Contains(v.Slots[1].HeaderError, "no keel slot header") {
		t.Errorf("blank disk: %+v", v)
	}
	out := mustRun(t, nil, "install", "--disk", disk, "--slot", "a", imgA, verA, "--trust", key+".pub")
	if !strings.Contains(out, "installed image image-a into slot a") || !strings.Contains(out, "signed by trusted key") {
		t.Errorf("install a:\n%s", out)
	}
	mustRun(t, nil, "install", "--disk", disk, "--slot", "b", imgB, verB, "--tries", "2")
	v = statusJSON(t, "--disk", disk)
	want := [2]bootstate.SlotState{{Priority: 1, Tries: 3}, {Priority: 2, Tries: 2}}
	if slotStates(v) != want || v.Slots[0].Header.ImageID != "image-a" || v.Slots[1].Header.ImageID != "image-b" || !v.Initialised {
		t.Errorf("after installing a and b: %+v", v)
	}
	checkVeritysetup(t, disk, v.Slots[1].Header.RootHash)

	if out := mustRun(t, nil, "mark-good", "--disk", disk, "a"); !strings.Contains(out, "slot a marked good") {
		t.Errorf("mark-good a: %s", out)
	}
	if out := mustRun(t, nil, "mark-good", "--disk", disk, "a"); !strings.Contains(out, "already good") {
		t.Errorf("mark-good a again: %s", out)
	}
	mustRun(t, nil, "mark-bad", "--disk", disk, "b", "--reason", "health check failed")
	want = [2]bootstate.SlotState{{Priority: 1, Tries: 3, Good: true}, {Reason: "health check failed"}}
	if got := slotStates(statusJSON(t, "--disk", disk)); got != want {
		t.Errorf("after mark-good a, mark-bad b: %+v, want %+v", got, want)
	}
	out = mustRun(t, nil, "set-next", "--disk", disk, "b")
	if !strings.Contains(out, "slot b boots next: 3 tries") || !strings.Contains(out, "fallback: slot a (priority 1, good)") {
		t.Errorf("set-next b:\n%s", out)
	}
	// b on trial, a the only good slot: rolling back to a keeps it good.
	out = mustRun(t, nil, "set-next", "--disk", disk, "a")
	if !strings.Contains(out, "slot a boots next: it stays good, as the only good slot") || !statusJSON(t, "--disk", disk).Slots[0].Good {
		t.Errorf("set-next a, the only good slot:\n%s", out)
	}
	text := mustRun(t, nil, "status", "--disk", disk)
	for _, s := range []string{"SLOT  PRIORITY  TRIES  GOOD", "image-b", "running: nothing (disk image)"} {
		if !strings.Contains(text, s) {
			t.Errorf("status lacks %q:\n%s", s, text)
		}
	}
}

// checkVeritysetup lets veritysetup itself check what install wrote.
func checkVeritysetup(t *testing.T, disk, rootHash string) {
	t.Helper()
	if _, err := exec.LookPath("veritysetup"); err != nil {
		return
	}
	p, err := openInDisk(disk, "root-b", false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	v, err := openInDisk(disk, "verity-b", false)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	dir := t.TempDir()
	root, hash := filepath.Join(dir, "root"), filepath.Join(dir, "verity")
	for path, part := range map[string]*partition{root: p, hash: v} {
		f, _ := os.Create(path)
		if _, err := f.ReadFrom(io.NewSectionReader(part, 0, part.size)); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if out, err := exec.Command("veritysetup", "verify", root, hash, rootHash, "--hash-offset=4096").CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify of the installed slot: %v\n%s", err, out)
	}
}

func TestSetNextRefusesEmptySlot(t *testing.T) {
	disk := makeDisk(t, t.TempDir(), "1MiB")
	r := slotctl(t, nil, "set-next", "--disk", disk, "b")
	if r.code != 1 || !strings.Contains(r.stderr, "verity-b") || !strings.Contains(r.stderr, "no keel slot header: refusing to boot slot b") {
		t.Errorf("set-next of an empty slot: exit %d, %s", r.code, r.stderr)
	}
	for _, args := range [][]string{{"set-next", "--disk", disk, "c"}, {"set-next", "--disk", disk, "b", "--tries", "0"}, {"mark-bad", "--disk", disk}, {"mark-good", "--disk", disk}} {
		if r := slotctl(t, nil, args...); r.code != 2 {
			t.Errorf("slotctl %q: exit %d, want a usage error\n%s", args, r.code, r.stderr)
		}
	}
}

// TestRefuseRunningSlot: a boot report saying b runs protects b.
func TestRefuseRunningSlot(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	img, ver := sealedImage(t, dir, "img", key)
	tries := 2
	rep := writeReport(t, dir, report.Report{Mode: "slot", Slot: "b", SlotReason: "highest priority (2), not yet good: 2 tries left", TriesLeft: &tries, ImageID: "img"})
	for _, args := range [][]string{
		{"mark-bad", "b"}, {"set-next", "b"}, {"install", "--slot", "b", img, ver},
	} {
		r := slotctl(t, nil, append(args, "--disk", disk, "--boot-report", rep)...)
		if r.code != 1 || !strings.Contains(r.stderr, "slot b is the running slot: refusing") {
			t.Errorf("slotctl %q while b runs: exit %d, %s", args, r.code, r.stderr)
		}
	}
	if out := mustRun(t, nil, "mark-good", "--disk", disk, "--boot-report", rep); !strings.Contains(out, "slot b marked good") {
		t.Errorf("mark-good of the running b: %s", out)
	}
	mustRun(t, nil, "install", "--slot", "a", img, ver, "--disk", disk, "--boot-report", rep)
	text := mustRun(t, nil, "status", "--disk", disk, "--boot-report", rep)
	if !strings.Contains(text, "running: slot b (*), image img: highest priority (2)") || !strings.Contains(text, "\nb*") {
		t.Errorf("status while b runs:\n%s", text)
	}
}

// TestRunningSystemFlags uses --bootstate and --boot-report the way the
// running system does, without a disk image.
func TestRunningSystemFlags(t *testing.T) {
	dir := t.TempDir()
	state := emptyState(t, dir)
	missing := filepath.Join(dir, "none.json")
	r := slotctl(t, nil, "mark-bad", "a", "--bootstate", state, "--boot-report", missing)
	if r.code != 1 || !strings.Contains(r.stderr, "cannot tell which slot is running") {
		t.Errorf("mark-bad without a boot report: exit %d, %s", r.code, r.stderr)
	}
	single := writeReport(t, dir, report.Report{Mode: "single"})
	if out := mustRun(t, nil, "mark-good", "--bootstate", state, "--boot-report", single); !strings.Contains(out, "nothing to mark good") {
		t.Errorf("mark-good in single mode: %s", out)
	}
	rep := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a"})
	// --bootstate through a symlink, as /dev/disk/by-partlabel/bootstate
	// is: the state's lock follows it.
	link := filepath.Join(dir, "by-partlabel-bootstate")
	if err := os.Symlink(state, link); err != nil {
		t.Fatal(err)
	}
	mustRun(t, nil, "mark-good", "--bootstate", link, "--boot-report", rep)
	r = slotctl(t, nil, "mark-good", "b", "--bootstate", state, "--boot-report", rep)
	if r.code != 1 || !strings.Contains(r.stderr, "slot b is not the running slot (a)") {
		t.Errorf("mark-good b while a runs: exit %d, %s", r.code, r.stderr)
	}
	mustRun(t, nil, "mark-bad", "b", "--bootstate", state, "--boot-report", rep)
	f, err := os.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, _, err := bootstate.Load(f)
	want := [2]bootstate.SlotState{{Priority: 2, Tries: 3, Good: true}, {Reason: "marked bad by slotctl mark-bad"}}
	if err != nil || s.Slots != want || s.Seq != 4 { // each command writes both copies
		t.Errorf("bootstate file: %+v, %v; want %+v at sequence 4", s, err, want)
	}
}

// TestRefuseLastGoodSlot: while the running slot b is not yet confirmed,
// the only good slot a is neither overwritten nor retired without --force.
func TestRefuseLastGoodSlot(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	img, ver := sealedImage(t, dir, "img", key)
	mustRun(t, nil, "mark-good", "a", "--disk", disk)
	tries := 2
	rep := writeReport(t, dir, report.Report{Mode: "slot", Slot: "b", SlotReason: "highest priority (2), not yet good", TriesLeft: &tries, ImageID: "img"})
	for _, args := range [][]string{{"mark-bad", "a"}, {"install", "--slot", "a", img, ver}} {
		r := slotctl(t, nil, append(args, "--disk", disk, "--boot-report", rep)...)
		if r.code != 1 || !strings.Contains(r.stderr, "slot a is the only good slot and the running slot b is not confirmed yet") {
			t.Errorf("slotctl %q while unconfirmed b runs: exit %d, %s", args, r.code, r.stderr)
		}
	}
	if out := mustRun(t, nil, "mark-bad", "a", "--force", "--disk", disk, "--boot-report", rep); !strings.Contains(out, "slot a marked bad") {
		t.Errorf("mark-bad --force: %s", out)
	}
}

// TestInstallRefusesRollback: once an image with rollback index 5 was
// marked good, install refuses an image with index 3 before writing
// anything, and mark-good never lowers the floor.
func TestInstallRefusesRollback(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	seal := func(name, index string) (string, string) {
		sub := filepath.Join(dir, name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		img, ver := makeImage(t, sub), filepath.Join(sub, "verity.img")
		mustRun(t, nil, "seal", "--image", img, "--out", ver, "--key", key, "--image-id", name, "--rollback-index", index)
		return img, ver
	}
	newImg, newVer := seal("new", "5")
	oldImg, oldVer := seal("old", "3")
	mustRun(t, nil, "install", "--slot", "b", newImg, newVer, "--disk", disk)
	mustRun(t, nil, "install", "--slot", "a", oldImg, oldVer, "--disk", disk) // before the floor rose
	mustRun(t, nil, "mark-good", "b", "--disk", disk)
	if v := statusJSON(t, "--disk", disk); v.RollbackFloor != 5 || v.LastGood != "b/new" {
		t.Fatalf("after mark-good of index 5: floor %d, last good %q", v.RollbackFloor, v.LastGood)
	}
	r := slotctl(t, nil, "install", "--slot", "a", oldImg, oldVer, "--disk", disk)
	if r.code != 1 || !strings.Contains(r.stderr, "rollback index 3, below this machine's floor 5") || !strings.Contains(r.stderr, "nothing was written") {
		t.Errorf("install of index 3 over floor 5: exit %d, %s", r.code, r.stderr)
	}
	// On a locked machine set-next of the slot holding index 3 is refused
	// as well: its init would refuse to boot it, the trial only retiring
	// the slot. Unlocked, the init boots it with a warning: a rollback to
	// a formerly good image stays possible.
	before := statusJSON(t, "--disk", disk)
	locked := writeReport(t, dir, report.Report{Locked: true})
	r = slotctl(t, nil, "set-next", "a", "--disk", disk, "--boot-report", locked)
	if r.code != 1 || !strings.Contains(r.stderr, "rollback index 3, below this machine's floor 5") {
		t.Errorf("locked: set-next of index 3 over floor 5: exit %d, %s", r.code, r.stderr)
	}
	if after := statusJSON(t, "--disk", disk); !reflect.DeepEqual(before, after) {
		t.Errorf("the refused set-next changed the state: %+v, then %+v", before, after)
	}
	unlocked := writeReport(t, filepath.Join(dir, "old"), report.Report{})
	r = slotctl(t, nil, "set-next", "a", "--disk", disk, "--boot-report", unlocked)
	if r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Errorf("unlocked: set-next of index 3 over floor 5: exit %d, %s; want done, no warning", r.code, r.stderr)
	}
	// A disk image alone (no boot report): whether its initramfs is locked
	// is unknown, so the trial is set, and the floor is said.
	r = slotctl(t, nil, "set-next", "a", "--disk", disk)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: verity-a: image old has rollback index 3, below this machine's floor 5") || !strings.Contains(r.stderr, "a locked initramfs refuses to boot it") {
		t.Errorf("no report: set-next of index 3 over floor 5: exit %d, %s; want done, with a warning", r.code, r.stderr)
	}
	if r := slotctl(t, nil, "seal", "--image", oldImg, "--out", oldVer, "--rollback-index", "4294967296"); r.code == 0 {
		t.Error("seal accepted a rollback index above 2^32-1")
	}
}

// TestMarkGoodKeepsEtcLineage: a boot of b whose /etc was not on the data
// partition (volatile, a tmpfs overlay, a failed merge) confirms b and
// raises the floor but leaves the last good image at a's, whose upper holds
// the machine's configuration; a persistent boot of b moves it.
func TestMarkGoodKeepsEtcLineage(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  report.Report
		move bool
	}{
		{"volatile", report.Report{Overlay: "tmpfs", Data: &report.Data{Device: "/dev/vda6", Volatile: true}}, false},
		{"tmpfs overlay", report.Report{Overlay: "tmpfs", Data: &report.Data{Device: "/dev/vda6", Binds: []string{"/var"}}}, false},
		{"merge failed", report.Report{Overlay: "persistent", Data: &report.Data{Device: "/dev/vda6", Upper: "/run/keel/data/@overlay/b/img-b", FreshUpper: true},
			EtcMerge: &report.EtcMerge{FromSlot: "a", FromImage: "img-a", Error: "no space left on device"}}, false},
		{"persistent", report.Report{Overlay: "persistent", Data: &report.Data{Device: "/dev/vda6", Upper: "/run/keel/data/@overlay/b/img-b"}}, true},
		// What the init reported for overlay=tmpfs before it stopped naming
		// an upper / is not on.
		{"tmpfs overlay naming an upper", report.Report{Overlay: "tmpfs", Data: &report.Data{Device: "/dev/vda6", Upper: "/run/keel/data/@overlay/b/img-b", FreshUpper: true}}, false},
		{"no data partition", report.Report{Overlay: "tmpfs"}, true},
		{"data=none, a data partition seen before", report.Report{Overlay: "tmpfs"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := emptyState(t, dir)
			if strings.Contains(tc.name, "seen before") {
				f, err := os.OpenFile(state, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				s := bootstate.DefaultState()
				s.DataSeen = true
				if err := errors.Join(bootstate.Save(f, &s), f.Close()); err != nil {
					t.Fatal(err)
				}
			}
			// The uppers are the test root's (testRoot): status reads the
			// last merge's record from the running one.
			root := testRoot(t)
			mustRun(t, nil, "mark-good", "--bootstate", state, "--boot-report", writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", ImageID: "img-a", Overlay: "persistent",
				Data: &report.Data{Device: "/dev/vda6", Upper: filepath.Join(root, "run/keel/data/@overlay/a/img-a")}}))
			r := tc.rep
			if r.Data != nil && r.Data.Upper != "" {
				d := *r.Data
				d.Upper = filepath.Join(root, d.Upper)
				r.Data = &d
			}
			r.Mode, r.Slot, r.ImageID, r.RollbackIndex = "slot", "b", "img-b", 7
			out := mustRun(t, nil, "mark-good", "--bootstate", state, "--boot-report", writeReport(t, dir, r))
			v := statusJSON(t, "--bootstate", state, "--boot-report", writeReport(t, dir, r))
			want := "a/img-a"
			if tc.move {
				want = "b/img-b"
			}
			if v.LastGood != want || v.RollbackFloor != 7 || !v.Slots[1].Good {
				t.Errorf("after mark-good of b: last good %q, floor %d, b %+v (%s); want last good %s, floor 7, b good", v.LastGood, v.RollbackFloor, v.Slots[1], out, want)
			}
			if !tc.move && !strings.Contains(out, "the last good image is not moved to img-b") {
				t.Errorf("mark-good did not say why the last good image stays: %s", out)
			}
		})
	}
}

// TestMarkGoodAfterMemoryCounting: a boot the init counted in memory (its
// report names no bootstate device) is not confirmed on the partition the
// label finds, whose state may have retired the slot; a boot counted on a
// device is confirmed there.
func TestMarkGoodAfterMemoryCounting(t *testing.T) {
	dir := t.TempDir()
	state := emptyState(t, dir)
	mustRun(t, nil, "mark-bad", "a", "--bootstate", state, "--boot-report", writeReport(t, dir, report.Report{Mode: "slot", Slot: "b"}))
	mem := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", ImageID: "img-a", RollbackIndex: 6})
	out := mustRun(t, nil, "mark-good", "--boot-report", mem)
	if !strings.Contains(out, "slot a is not marked good: this boot was counted in memory") {
		t.Errorf("mark-good after a boot counted in memory: %s", out)
	}
	durable := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", ImageID: "img-a", RollbackIndex: 6, Devices: map[string]string{"bootstate": state}})
	if out := mustRun(t, nil, "mark-good", "--boot-report", durable); !strings.Contains(out, "slot a marked good") {
		t.Errorf("mark-good after a durable boot: %s", out)
	}
	if v := statusJSON(t, "--bootstate", state, "--boot-report", durable); !v.Slots[0].Good || v.RollbackFloor != 6 {
		t.Errorf("after the durable boot's mark-good: %+v", v)
	}
}

// emptyState is an empty boot state file in dir, as --bootstate takes it.
func emptyState(t *testing.T, dir string) string {
	t.Helper()
	state := filepath.Join(dir, "bootstate")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return state
}

// TestSaveEndsDataMountCount: a slotctl change (here mark-good after a
// slot= boot, which leaves the count alone) saves the state with no
// unfinished data mount, in both copies.
func TestSaveEndsDataMountCount(t *testing.T) {
	dir := t.TempDir()
	state := emptyState(t, dir)
	f, err := os.OpenFile(state, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := bootstate.DefaultState()
	s.BeginDataMount()
	if err := bootstate.Save(f, &s); err != nil {
		t.Fatal(err)
	}
	rep := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a"})
	mustRun(t, nil, "mark-good", "--bootstate", state, "--boot-report", rep)
	got, _, err := bootstate.Load(f)
	if err != nil || got.UnfinishedDataMounts != 0 || !got.Slots[0].Good {
		t.Errorf("after mark-good: %+v, %v: want a good, no unfinished data mount", got, err)
	}
	b := make([]byte, 2*bootstate.RecordSize)
	for _, off := range []int64{0, 64 << 10} {
		if _, err := f.ReadAt(b[:bootstate.RecordSize], off); err != nil {
			t.Fatal(err)
		}
		if c, err := bootstate.ParseRecord(b[:bootstate.RecordSize]); err != nil || c.UnfinishedDataMounts != 0 {
			t.Errorf("record copy at %d: %+v, %v: want no unfinished data mount", off, c, err)
		}
	}
	f.Close()
}

// TestSmallBootStateRefused: a bootstate partition that cannot hold both
// record copies (64 KiB: copy 1 starts at 64 KiB) is refused by its size
// before anything is written. It used to take the first record, then fail
// every change after it (and the init's second boot could not count).
func TestSmallBootStateRefused(t *testing.T) {
	dir := t.TempDir()
	disk := makeDiskState(t, dir, "4MiB", "64KiB")
	for _, args := range [][]string{{"mark-good", "a"}, {"mark-bad", "b"}, {"mark-good", "b"}} {
		r := slotctl(t, nil, append(args, "--disk", disk)...)
		if r.code == 0 || !strings.Contains(r.stderr, "too small for both copies of the boot state") {
			t.Errorf("%v on a 64 KiB bootstate: exit %d, %q: want it refused by its size", args, r.code, r.stderr)
		}
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off, size, _, err := findInGPT(f, bootstate.Label)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, make([]byte, size)) {
		t.Error("the refused bootstate partition was written")
	}
}

// TestInstallTrustsTheRunningInitramfs: without --trust, install checks
// the image against the keys the running initramfs trusts (its boot
// report's trusted_keys): an unsigned image, or one signed by another key,
// which that initramfs would refuse to boot, is refused before the good
// slot b is touched; one signed by its key goes in, authenticated. A
// locked report that names no keys (an older init) requires --trust. The
// install used to write any image over the fallback slot and set it next.
func TestInstallTrustsTheRunningInitramfs(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	key, other := filepath.Join(dir, "k"), filepath.Join(dir, "other")
	mustRun(t, nil, "keygen", "--out", key)
	mustRun(t, nil, "keygen", "--out", other)
	pubs, err := slotkeys.LoadTrusted([]string{key + ".pub"})
	if err != nil {
		t.Fatal(err)
	}
	signed, signedVer := sealedImage(t, dir, "signed", key)
	foreign, foreignVer := sealedImage(t, dir, "foreign", other)
	sub := filepath.Join(dir, "unsigned")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	unsigned, unsignedVer := makeImage(t, sub), filepath.Join(sub, "verity.img")
	mustRun(t, nil, "seal", "--image", unsigned, "--out", unsignedVer, "--image-id", "unsigned")
	mustRun(t, nil, "mark-good", "b", "--disk", disk)
	rep := writeReport(t, dir, report.Report{Mode: "slot", Slot: "a", ImageID: "x", Locked: true, Authenticated: true,
		TrustedKeys: []string{base64.StdEncoding.EncodeToString(pubs[0])}})
	mustRun(t, nil, "mark-good", "--disk", disk, "--boot-report", rep) // the running a
	for _, tc := range []struct{ img, ver, why string }{
		{unsigned, unsignedVer, "not signed"},
		{foreign, foreignVer, "key"},
	} {
		r := slotctl(t, nil, "install", "--slot", "b", tc.img, tc.ver, "--disk", disk, "--boot-report", rep)
		if r.code == 0 || !strings.Contains(r.stderr, tc.why) || !strings.Contains(r.stderr, "nothing was written") {
			t.Errorf("install of %s over good b: exit %d, %q: want it refused (%s), nothing written", filepath.Base(tc.ver), r.code, r.stderr, tc.why)
		}
	}
	if st := mustRun(t, nil, "status", "--disk", disk); !regexp.MustCompile(`(?m)^b\s+\d+\s+\d+\s+yes\s`).MatchString(st) || strings.Contains(st, "install in progress") {
		t.Errorf("status after the refusals:\n%s\nwant b still good, untouched", st)
	}
	if out := mustRun(t, nil, "install", "--slot", "b", signed, signedVer, "--disk", disk, "--boot-report", rep); !strings.Contains(out, "signed by trusted key") {
		t.Errorf("install of an image signed by the trusted key: %s: want it checked against the trusted key", out)
	}
	noKeys := writeReport(t, filepath.Join(dir, "unsigned"), report.Report{Mode: "slot", Slot: "a", ImageID: "x", Locked: true, Authenticated: true})
	r := slotctl(t, nil, "install", "--slot", "b", signed, signedVer, "--disk", disk, "--boot-report", noKeys)
	if r.code == 0 || !strings.Contains(r.stderr, "pass --trust KEY") {
		t.Errorf("locked report without keys, no --trust: exit %d, %q: want --trust asked for", r.code, r.stderr)
	}
	mustRun(t, nil, "install", "--slot", "b", signed, signedVer, "--disk", disk, "--boot-report", noKeys, "--trust", key+".pub")
}

// TestStateLock: a change of the boot state waits for another slotctl's:
// while the disk's lock is held, mark-good fails once the wait is over,
// naming the other slotctl, and writes nothing; a holder that lets go
// within the wait lets it through. Two slotctl processes used to race for
// the bootstate partition's exclusive open, the second failing at once.
func TestStateLock(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	old := stateLockWait
	t.Cleanup(func() { stateLockWait = old })
	stateLockWait = 0
	r := slotctl(t, nil, "mark-good", "a", "--disk", disk)
	if r.code == 0 || !strings.Contains(r.stderr, "being changed by another slotctl") {
		t.Errorf("mark-good while another holds the lock: exit %d, %q: want it to wait, then fail naming the other", r.code, r.stderr)
	}
	if v := statusJSON(t, "--disk", disk); v.Slots[0].Good {
		t.Error("the refused mark-good wrote the state")
	}
	stateLockWait = time.Hour // a hang guard: the holder lets go below
	waiting := make(chan struct{})
	var once sync.Once
	lockWaiting = func() { once.Do(func() { close(waiting) }) }
	t.Cleanup(func() { lockWaiting = nil })
	done := make(chan result, 1)
	go func() { done <- slotctl(t, nil, "mark-good", "a", "--disk", disk) }()
	select { // mark-good found the lock held: it waits, then goes on
	case <-waiting:
	case r := <-done:
		t.Fatalf("mark-good returned without waiting for the held lock: exit %d, %s", r.code, r.stderr)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.code != 0 {
		t.Errorf("mark-good once the lock was let go: exit %d, %s", r.code, r.stderr)
	}
	if v := statusJSON(t, "--disk", disk); !v.Slots[0].Good {
		t.Error("mark-good after the wait did not write the state")
	}
	// The running system's lock file is root's alone: flock needs no
	// write permission, so one others could open, any user could hold.
	root := t.TempDir()
	unlock, err := (&target{root: root}).lockState()
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if fi, err := os.Stat(filepath.Join(root, "run/keel/slotctl.lock")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the lock file: %v, %v: want mode 0600", fi, err)
	}
}

// TestLockPath: every target on the running system's state takes the same
// lock, whatever path names the bootstate device: keel-mark-good.service
// (no flags) and an agent's --bootstate /dev/… used to lock two files, and
// wrote the state at once. A file or a disk image is its own lock.
func TestLockPath(t *testing.T) {
	root := t.TempDir()
	file := filepath.Join(root, "bootstate.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(root, "run/keel/slotctl.lock")
	for _, tc := range []struct {
		name string
		t    target
		want string
	}{
		{"the running system", target{root: root}, run},
		{"--bootstate of a device", target{root: root, bootstate: os.DevNull}, run}, // not a regular file, as /dev/vda3
		{"--bootstate of a file", target{root: root, bootstate: file}, file},
		{"--disk", target{root: root, disk: file}, file},
		{"--disk and --bootstate of a device", target{root: root, disk: file, bootstate: os.DevNull}, run},
	} {
		if got, _ := tc.t.lockPath(); got != tc.want {
			t.Errorf("%s: lock %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestStateLockAgentAndMarkGood: an agent's change through --bootstate
// /dev/… and keel-mark-good.service's (no flags) exclude each other (on the
// old lock the second got its own lock at once).
func TestStateLockAgentAndMarkGood(t *testing.T) {
	root := t.TempDir()
	unlock, err := (&target{root: root, bootstate: os.DevNull}).lockState()
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	old := stateLockWait
	t.Cleanup(func() { stateLockWait = old })
	stateLockWait = 0
	if u, err := (&target{root: root}).lockState(); err == nil || !strings.Contains(err.Error(), "being changed by another slotctl") {
		if u != nil {
			u()
		}
		t.Errorf("mark-good's lock while an agent holds the device's: %v, want it held", err)
	}
}

// TestDiskInUseRefused: --disk naming a block device that something else
// claims (a mounted partition or a device-mapper table makes the kernel
// refuse an exclusive open of the whole disk; here the test holds one) is
// refused before anything is written; once let go it is written. It used
// to be written through the whole-disk node, every check of the running
// slot skipped.
func TestDiskInUseRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a loop device")
	}
	needTool(t, "losetup")
	dir := t.TempDir()
	img := makeDisk(t, dir, "4MiB")
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v (loop devices work on keel's test machines)", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })
	claim, err := os.OpenFile(loop, os.O_RDONLY|unix.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := slotctl(t, nil, "mark-bad", "b", "--disk", loop)
	if r.code == 0 || !strings.Contains(r.stderr, "a partition of this disk is mounted or mapped") {
		t.Errorf("mark-bad --disk %s while claimed: exit %d, %q: want it refused", loop, r.code, r.stderr)
	}
	if v := statusJSON(t, "--disk", loop); v.Slots[1].Priority == 0 {
		t.Error("the refused mark-bad wrote the state")
	}
	claim.Close()
	mustRun(t, nil, "mark-bad", "b", "--disk", loop)
	if v := statusJSON(t, "--disk", loop); v.Slots[1].Priority != 0 {
		t.Errorf("mark-bad --disk of a disk no longer claimed: slot b %+v", v.Slots[1])
	}
}

// FuzzOpenInDisk: whatever a --disk's table says, the partition slotctl
// would read and write lies inside the disk (a table copied from a larger
// disk is refused, not followed past the end), and no table panics.
func FuzzOpenInDisk(f *testing.F) {
	if _, err := exec.LookPath("sfdisk"); err == nil {
		img := filepath.Join(f.TempDir(), "seed.img")
		if err := os.WriteFile(img, make([]byte, 2<<20), 0o644); err != nil {
			f.Fatal(err)
		}
		cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", img)
		cmd.Stdin = strings.NewReader("label: gpt\nsize=512KiB, name=root-a\nsize=256KiB, name=bootstate\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			f.Fatalf("sfdisk: %v\n%s", err, out)
		}
		b, err := os.ReadFile(img)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:64<<10]) // the primary table, the partitions past the end
	}
	f.Add([]byte("EFI PART"))
	f.Fuzz(func(t *testing.T, b []byte) {
		disk := filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(disk, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, label := range []string{"root-a", bootstate.Label} {
			p, err := openInDisk(disk, label, false)
			if err != nil {
				continue
			}
			if p.off < 0 || p.size <= 0 || p.off+p.size > int64(len(b)) || p.off+p.size < p.off {
				t.Fatalf("%s: bytes %d to %d of a %d-byte disk", label, p.off, p.off+p.size, len(b))
			}
			p.Close()
		}
	})
}

// TestMarkGoodCountsOnlySignedIndex: confirming a slot that is not the
// running one raises the floor to its header's rollback index only when a
// key the running initramfs trusts signed it, as the init counts it: an
// unsigned header's index (anyone who writes the slot chooses it, 2^32-1
// here) is named and left out. With --disk and no boot report the operator
// holding the disk vouches for it, as before.
func TestMarkGoodCountsOnlySignedIndex(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	pubs, err := slotkeys.LoadTrusted([]string{key + ".pub"})
	if err != nil {
		t.Fatal(err)
	}
	seal := func(name string, signed bool) (string, string) {
		sub := filepath.Join(dir, name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		img, ver := makeImage(t, sub), filepath.Join(sub, "verity.img")
		args := []string{"seal", "--image", img, "--out", ver, "--image-id", name, "--rollback-index", "4294967295"}
		if signed {
			args = append(args, "--key", key)
		}
		mustRun(t, nil, args...)
		return img, ver
	}
	keys := []string{base64.StdEncoding.EncodeToString(pubs[0])}
	for _, tc := range []struct {
		name   string
		signed bool
		keys   []string
		report bool
		floor  uint64
	}{
		{name: "unsigned, no keys", report: true},
		{name: "signed, report trusts its key", signed: true, keys: keys, report: true, floor: 4294967295},
		{name: "unsigned, --disk without a report", floor: 4294967295},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			disk := makeDisk(t, sub, "4MiB")
			img, ver := seal(filepath.Base(sub)+"-img", tc.signed)
			args := []string{"--disk", disk}
			if tc.report {
				args = append(args, "--boot-report", writeReport(t, sub, report.Report{Mode: "slot", Slot: "a", ImageID: "x", TrustedKeys: tc.keys}))
			}
			mustRun(t, nil, append([]string{"install", "--slot", "b", img, ver}, args...)...)
			out := mustRun(t, nil, append([]string{"mark-good", "b"}, args...)...)
			v := statusJSON(t, "--disk", disk)
			if v.RollbackFloor != tc.floor {
				t.Errorf("floor %d after mark-good b (%s), want %d", v.RollbackFloor, out, tc.floor)
			}
			if tc.floor == 0 && !strings.Contains(out, "rollback index 4294967295 not counted") {
				t.Errorf("mark-good did not name the index it left out: %s", out)
			}
		})
	}
}

// TestUncountedIndexNotHeldToTheFloor: on a machine whose init trusts no
// keys, which neither checks nor records an unsigned rollback index, a
// floor raised before (by the old rule, from an index anyone could write,
// or by mark-good --disk) no longer refuses an unsigned image the init
// boots: install and set-next, even reported locked, go on and say the
// index is not counted (found in review: the denial of service the init's
// fix ended went on in slotctl on machines already hit).
func TestUncountedIndexNotHeldToTheFloor(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	seal := func(name, index string) (string, string) {
		sub := filepath.Join(dir, name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		img, ver := makeImage(t, sub), filepath.Join(sub, "verity.img")
		mustRun(t, nil, "seal", "--image", img, "--out", ver, "--image-id", name, "--rollback-index", index)
		return img, ver
	}
	hiImg, hiVer := seal("hi", "4294967295")
	mustRun(t, nil, "install", "--slot", "b", hiImg, hiVer, "--disk", disk)
	mustRun(t, nil, "mark-good", "b", "--disk", disk) // no report: the operator's word
	if f := statusJSON(t, "--disk", disk).RollbackFloor; f != 4294967295 {
		t.Fatalf("floor %d after mark-good --disk, want 4294967295", f)
	}
	rep := writeReport(t, dir, report.Report{Mode: "slot", Slot: "b", ImageID: "hi"})
	img, ver := seal("next", "3")
	r := slotctl(t, nil, "install", "--slot", "a", img, ver, "--disk", disk, "--boot-report", rep)
	if r.code != 0 || !strings.Contains(r.stdout, "rollback index 3 is below the floor 4294967295 but not counted") {
		t.Errorf("install of an unsigned image the keyless init boots: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	// A locked init with no keys (a baked roothash=) does not count it
	// either.
	locked := writeReport(t, filepath.Join(dir, "next"), report.Report{Mode: "slot", Slot: "b", ImageID: "hi", Locked: true})
	r = slotctl(t, nil, "set-next", "a", "--disk", disk, "--boot-report", locked)
	if r.code != 0 || !strings.Contains(r.stdout, "not counted") {
		t.Errorf("set-next of it, locked: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
}
