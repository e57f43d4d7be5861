// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/slots"
)

// TestInstallRejects: bad input is refused before anything is written.
func TestInstallRejects(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "1MiB")
	key, other := filepath.Join(dir, "k"), filepath.Join(dir, "other")
	mustRun(t, nil, "keygen", "--out", key)
	mustRun(t, nil, "keygen", "--out", other)
	img, ver := sealedImage(t, dir, "img", key)
	before, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}

	r := slotctl(t, nil, "install", "--disk", disk, "--slot", "b", img, ver, "--trust", other+".pub")
	if r.code != 1 || !strings.Contains(r.stderr, "not in the trusted set") || !strings.Contains(r.stderr, "nothing was written") {
		t.Errorf("install with an untrusted key: exit %d, %s", r.code, r.stderr)
	}
	big := padImage(t, img, 2<<20)
	bigVer := filepath.Join(dir, "big.verity")
	mustRun(t, nil, "seal", "--image", big, "--out", bigVer)
	r = slotctl(t, nil, "install", "--disk", disk, "--slot", "b", big, bigVer)
	if r.code != 1 || !strings.Contains(r.stderr, "partition is 1048576 bytes, "+big+" is 2097152 bytes: it does not fit") {
		t.Errorf("install of a too large image: exit %d, %s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(disk); !bytes.Equal(before, after) {
		t.Errorf("refused installs changed the disk")
	}
	for _, args := range [][]string{
		{"install", "--disk", disk, img, ver},
		{"install", "--disk", disk, "--slot", "x", img, ver},
		{"install", "--disk", disk, "--slot", "a", img},
		{"install", "--disk", disk, "--slot", "a", "--tries", "300", img, ver},
	} {
		if r := slotctl(t, nil, args...); r.code != 2 {
			t.Errorf("slotctl %q: exit %d, want a usage error\n%s", args, r.code, r.stderr)
		}
	}
}

// TestInstallRefusesCutInputs: an image or verity file shorter than its
// signed header says (a download cut short) is refused before the slot is
// marked bad or written: the good slot b keeps its image and its flag.
func TestInstallRefusesCutInputs(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "1MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	img, ver := sealedImage(t, dir, "img", key)
	mustRun(t, nil, "install", "--disk", disk, "--slot", "b", img, ver)
	mustRun(t, nil, "mark-good", "--disk", disk, "b")
	before, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	cut := func(file string, drop int64) string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), filepath.Base(file))
		if err := os.WriteFile(out, b[:int64(len(b))-drop], 0o644); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct{ name, img, ver, want string }{
		{"image", cut(img, 4096), ver, "the file is cut short"},
		{"image by one byte", cut(img, 1), ver, "the file is cut short"},
		{"verity file", img, cut(ver, 4096), "header and hash tree take"},
	} {
		r := slotctl(t, nil, "install", "--disk", disk, "--slot", "b", "--force", tc.img, tc.ver)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "nothing was written") {
			t.Errorf("%s cut short: exit %d, %s", tc.name, r.code, r.stderr)
		}
		if after, _ := os.ReadFile(disk); !bytes.Equal(before, after) {
			t.Fatalf("%s cut short: the disk changed (slot b: %+v)", tc.name, statusJSON(t, "--disk", disk).Slots[1])
		}
	}
}

// padImage writes a copy of img padded with zeros to size bytes: still a
// valid SquashFS image, only larger.
func padImage(t *testing.T, img string, size int64) string {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "big.squashfs")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, size); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInstallOverOldImage: a smaller image over a larger one verifies (the
// stale tail is outside the tree) and a failed read-back leaves the slot bad.
func TestInstallOverOldImage(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	img, ver := sealedImage(t, dir, "small", key)
	big := padImage(t, img, 3<<20)
	bigVer := filepath.Join(dir, "big.verity")
	mustRun(t, nil, "seal", "--image", big, "--out", bigVer, "--image-id", "big")
	mustRun(t, nil, "install", "--disk", disk, "--slot", "a", big, bigVer)
	mustRun(t, nil, "install", "--disk", disk, "--slot", "a", img, ver)
	v := statusJSON(t, "--disk", disk)
	if v.Slots[0].Header.ImageID != "small" || v.Slots[0].Priority != 2 {
		t.Errorf("after installing small over big: %+v", v.Slots[0])
	}
}

func TestInstallJobFailedMarksBad(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "bootstate")
	if err := os.WriteFile(state, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	j := &installJob{t: &target{bootstate: state, disk: filepath.Join(dir, "disk.img")}, slot: slots.SlotB}
	err := j.failed(os.ErrInvalid)
	if err == nil || !strings.Contains(err.Error(), "slot b stays marked bad") {
		t.Errorf("failed: %v", err)
	}
	f, _ := os.Open(state)
	defer f.Close()
	s, _, _ := bootstate.Load(f)
	if b := s.Slot(slots.SlotB); b.Priority != 0 || b.Reason != "install failed: invalid argument" {
		t.Errorf("slot b after a failed install: %+v", b)
	}
}

// TestInstallReadBackFails: what is verified is what landed on the
// partitions, not the input files. Here verity-X overlaps root-X (a broken
// partition table), so the read-back finds the image overwritten.
func TestInstallReadBackFails(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	img, ver := sealedImage(t, dir, "img", key)
	disk := filepath.Join(dir, "disk")
	if err := os.WriteFile(disk, make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(label string, off int64) *partition {
		p, err := openPath(label, disk, true)
		if err != nil {
			t.Fatal(err)
		}
		p.off, p.size = off, 2<<20
		return p
	}
	j := &installJob{slot: slots.SlotB, image: img, verity: ver, rootP: open("root-b", 0), verityP: open("verity-b", 8192)}
	defer closeAll(j.rootP, j.verityP)
	in, err := openInputs(img, ver, nil)
	if err != nil {
		t.Fatalf("the input itself is fine: %v", err)
	}
	defer in.Close()
	_, _, err = j.writeAndVerify(in)
	if err == nil || !strings.Contains(err.Error(), "read back root-b") || !strings.Contains(err.Error(), "mismatch") {
		t.Errorf("overlapping partitions: %v, want a read-back hash mismatch", err)
	}
}

// TestInstallRefusesReusedImageID: an image sealed with the id of the one
// the slot holds but with other contents is refused before anything is
// written (the slot's upper would be mounted over it, unmerged); the same
// image again is fine, and --force writes the other one.
func TestInstallRefusesReusedImageID(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "4MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	img, ver := sealedImage(t, dir, "same", key)
	mustRun(t, nil, "install", "--disk", disk, "--slot", "a", img, ver)
	mustRun(t, nil, "install", "--disk", disk, "--slot", "a", img, ver) // the same bits: fine
	other := padImage(t, img, 2<<20)
	otherVer := filepath.Join(dir, "other.verity")
	mustRun(t, nil, "seal", "--image", other, "--out", otherVer, "--key", key, "--image-id", "same")
	before := statusJSON(t, "--disk", disk)
	r := slotctl(t, nil, "install", "--disk", disk, "--slot", "a", other, otherVer)
	if r.code == 0 || !strings.Contains(r.stderr, "image id same is the one slot a holds, with another root hash") || !strings.Contains(r.stderr, "nothing was written") {
		t.Errorf("install of another image under the slot's id: exit %d, %q: want it refused", r.code, r.stderr)
	}
	if after := statusJSON(t, "--disk", disk); !reflect.DeepEqual(before, after) {
		t.Errorf("the refused install changed the state: %+v, then %+v", before, after)
	}
	mustRun(t, nil, "install", "--disk", disk, "--slot", "a", other, otherVer, "--force")
	if v := statusJSON(t, "--disk", disk); v.Slots[0].Header.RootHash == before.Slots[0].Header.RootHash {
		t.Error("install --force did not write the other image")
	}
	// The other slot holding that id is no reason: uppers are per slot.
	mustRun(t, nil, "install", "--disk", disk, "--slot", "b", img, ver)
}

// whenInputsChecked makes install call change once it has checked its
// input files, before it marks the slot bad and writes it.
func whenInputsChecked(t *testing.T, change func()) {
	t.Helper()
	inputsChecked = change
	t.Cleanup(func() { inputsChecked = nil })
}

// goodSlotsAndUpdate makes a disk whose slots both hold good images
// (rollback floor 5), and an update, image new with rollback index 6,
// sealed in dir/new as an update agent would have downloaded it.
func goodSlotsAndUpdate(t *testing.T) (dir, disk, key, img, ver string) {
	t.Helper()
	dir, disk, key = keyedDisk(t)
	for _, x := range slots.Slots() {
		goodImg, goodVer := sealedIndex(t, dir, "good-"+x.String(), key, "5")
		mustRun(t, nil, "install", "--disk", disk, "--slot", x.String(), goodImg, goodVer)
		mustRun(t, nil, "mark-good", "--disk", disk, x.String())
	}
	img, ver = sealedIndex(t, dir, "new", key, "6")
	return dir, disk, key, img, ver
}

// TestInstallWritesTheCheckedFiles: other files renamed over the update's
// once install has checked them (a shared download directory, an agent's
// staging area) are neither written nor set next: install writes the
// files it checked, read through the descriptors it checked them with.
// It used to open them by name again to write them, and wrote the others:
// an older image signed by the trusted key, below the rollback floor, set
// to boot next; or an unsigned one over the good slot a, whose read-back
// then failed with the good image already lost (found in review).
func TestInstallWritesTheCheckedFiles(t *testing.T) {
	for _, signed := range []bool{true, false} {
		t.Run(map[bool]string{true: "older-signed", false: "unsigned"}[signed], func(t *testing.T) {
			dir, disk, key, img, ver := goodSlotsAndUpdate(t)
			oldImg, oldVer := sealedIndex(t, dir, "old", key, "1")
			if !signed {
				oldVer = filepath.Join(dir, "old", "unsigned.verity")
				mustRun(t, nil, "seal", "--image", oldImg, "--out", oldVer, "--image-id", "old")
			}
			whenInputsChecked(t, func() {
				for _, mv := range [][2]string{{oldImg, img}, {oldVer, ver}} {
					if err := os.Rename(mv[0], mv[1]); err != nil {
						t.Error(err)
					}
				}
			})
			r := slotctl(t, nil, "install", "--disk", disk, "--slot", "a", img, ver, "--trust", key+".pub")
			h, a := readSlotHeader(t, disk, "a"), statusJSON(t, "--disk", disk).Slots[0]
			if r.code != 0 || h.ImageID != "new" || h.RollbackIndex != 6 || a.Priority != 2 {
				t.Errorf("install: exit %d, %s; slot a holds image %s, rollback index %d, %s (%+v): want the checked image new, index 6, set next",
					r.code, r.stderr, h.ImageID, h.RollbackIndex, keyIDString(h), a)
			}
		})
	}
}

// TestInstallRefusesARewrittenHeader: the update's verity file rewritten
// in place once install has checked it, which holding it open does not
// stop: here the same image's tree under an older header signed by the
// trusted key, below the rollback floor. The tree checks pass; the header
// read back from the slot is not the one checked, so the install fails,
// naming what changed, and slot a stays marked bad. It used to be written,
// read back as verified, and set to boot next.
func TestInstallRefusesARewrittenHeader(t *testing.T) {
	dir, disk, key, img, ver := goodSlotsAndUpdate(t)
	seal := func(out, id, index string) { // the same tree: salt and uuid from the image
		mustRun(t, map[string]string{"SOURCE_DATE_EPOCH": "1700000000"},
			"seal", "--image", img, "--out", out, "--key", key, "--image-id", id, "--rollback-index", index)
	}
	seal(ver, "new", "6")
	oldVer := filepath.Join(dir, "old.verity")
	seal(oldVer, "old", "1")
	old, err := os.ReadFile(oldVer)
	if err != nil {
		t.Fatal(err)
	}
	whenInputsChecked(t, func() {
		if err := os.WriteFile(ver, old, 0o644); err != nil {
			t.Error(err)
		}
	})
	r := slotctl(t, nil, "install", "--disk", disk, "--slot", "a", img, ver, "--trust", key+".pub")
	a := statusJSON(t, "--disk", disk).Slots[0]
	if r.code != 1 || !strings.Contains(r.stderr, "is not the one checked before the write: image id old, not new; rollback index 1, not 6") ||
		!strings.Contains(r.stderr, "slot a stays marked bad") || a.Bootable || a.Priority != 0 {
		t.Errorf("install: exit %d, %s; slot a: %+v: want it failed, naming the changed header, and slot a marked bad", r.code, r.stderr, a)
	}
}
