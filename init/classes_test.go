// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/verity"
)

// TestFailureClassesDocumented: docs/boot-sequence.md lists exactly the
// table of init/classes.go, in order.
func TestFailureClassesDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/boot-sequence.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	begin, end := strings.Index(doc, "<!-- failure-classes:begin -->"), strings.Index(doc, "<!-- failure-classes:end -->")
	if begin < 0 || end < begin {
		t.Fatal("docs/boot-sequence.md has no failure-classes table markers")
	}
	var want []string
	for _, f := range failureClasses {
		class := "environment"
		if f.class == bootstate.Image {
			class = "image"
		}
		want = append(want, "| "+f.step+" | "+class+" | "+f.what+" |")
	}
	var got []string
	for _, line := range strings.Split(doc[begin:end], "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| step |") && !strings.HasPrefix(line, "| ---") {
			got = append(got, line)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("docs/boot-sequence.md failure classes:\n%s\nwant (init/classes.go):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFault: every step of the table classifies as listed, and a step that
// is not in it is an environment fault.
func TestFault(t *testing.T) {
	steps := map[string]bool{}
	for _, f := range failureClasses {
		if steps[f.step] {
			t.Errorf("step %q listed twice", f.step)
		}
		steps[f.step] = true
		err := fault(f.step, errors.New("boom"))
		if got := bootstate.ClassOf(err); got != f.class || err.Error() != "boom" {
			t.Errorf("fault(%q) = %v (%v), want class %v", f.step, err, got, f.class)
		}
	}
	if got := bootstate.ClassOf(fault("no such step", errors.New("x"))); got != bootstate.Environment {
		t.Errorf("an unknown step classifies as %v", got)
	}
	if fault(stepHeader, nil) != nil {
		t.Error("fault(step, nil) is not nil")
	}
}

// TestMountFault: a failed mount of the image (or lookup of its init)
// retires the slot only when it can be the image's: not for a missing
// module, not for an EIO that the partitions, read directly, confirm (the
// disk's); an EIO they do not confirm is mounted again, and is the image's
// when it comes back (SquashFS says EIO for content it cannot decompress),
// with dm-verity or without. When the second mount succeeds the boot goes
// on (nil), the retry named in the report's warnings.
func TestMountFault(t *testing.T) {
	good, gone := faultTargets(t)
	eio := fmt.Errorf("mounting the image: %w", unix.EIO)
	const mounted = "(mounted)"
	for _, c := range []struct {
		name      string
		target    verity.Target
		verityOff bool
		err       error
		again     error // the second mount's result
		want      bootstate.Class
		reason    string // mounted: the second mount worked (nil)
		mounts    int    // how many times the image is mounted again
	}{
		{"no module", good, false, unix.ENODEV, nil, bootstate.Environment, "", 0},
		{"not a squashfs", good, false, unix.EINVAL, nil, bootstate.Image, "valid SquashFS", 0},
		{"EIO twice, partitions read fine", good, false, eio, eio, bootstate.Image, "valid SquashFS", 1},
		{"EIO once, partitions read fine", good, false, eio, nil, 0, mounted, 1},
		{"EIO, partitions fail", gone, false, eio, nil, bootstate.Environment, "read directly, the slot's partitions fail too", 0},
		{"EIO without dm-verity twice, device reads fine", good, true, eio, eio, bootstate.Image, "valid SquashFS", 1},
		{"EIO without dm-verity once, device reads fine", good, true, eio, nil, 0, mounted, 1},
		{"EIO without dm-verity, device fails", gone, true, eio, nil, bootstate.Environment, "read directly, the slot's partitions fail too", 0},
	} {
		b := &boot{log: newLogger(io.Discard), rep: &report.Report{}}
		b.cfg.VerityOff = c.verityOff
		mounts := 0
		err := b.mountFault(&image{target: c.target, dataDev: c.target.DataDev}, c.err, func() error { mounts++; return c.again })
		if mounts != c.mounts {
			t.Errorf("%s: mounted again %d times, want %d", c.name, mounts, c.mounts)
		}
		if c.reason == mounted {
			if err != nil || !strings.Contains(strings.Join(b.rep.Warnings, "\n"), "mounting it again") {
				t.Errorf("%s: %v, warnings %q: want nil, the second mount said", c.name, err, b.rep.Warnings)
			}
			continue
		}
		if got := bootstate.ClassOf(err); got != c.want || !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %v (%v), want class %v mentioning %q", c.name, err, got, c.want, c.reason)
		}
	}
}

// faultTargets gives a verity target whose partitions (files) read, and
// one whose data partition is gone.
func faultTargets(t *testing.T) (good, gone verity.Target) {
	dir := t.TempDir()
	data, hash := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	for name, size := range map[string]int{data: 2 * 4096, hash: 3 * 4096} {
		if err := os.WriteFile(name, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good = verity.Target{Name: "keel-root-a", DataDev: data, HashDev: hash, HashOffset: 4096, Params: verity.Params{DataBlocks: 2}}
	gone = good
	gone.DataDev = filepath.Join(dir, "gone")
	return good, gone
}

// TestInitReadFault: an EIO looking the init up in the image just mounted
// is the disk's when the slot's partitions fail when read directly; when
// they read fine the image is mounted again (SquashFS keeps the failed
// block's error for that mount), said in the warnings. Anything else the
// lookup meets is left to checkInit. It used to be "the image has no init":
// a one-off read error retired the slot.
func TestInitReadFault(t *testing.T) {
	good, gone := faultTargets(t)
	eio := fmt.Errorf("init /sbin/init not found in the new root: %w", unix.EIO)
	busy := errors.New("unmount: busy")
	for _, c := range []struct {
		name     string
		target   verity.Target
		lookup   error
		remount  error
		want     error // nil, or what the error wraps
		class    bootstate.Class
		remounts int
	}{
		{"found", good, nil, nil, nil, 0, 0},
		{"no init: checkInit's", good, fs.ErrNotExist, nil, nil, 0, 0},
		{"EIO, partitions read fine: mounted again", good, eio, nil, nil, 0, 1},
		{"EIO, mounted again, that fails", good, eio, busy, busy, 0, 1},
		{"EIO, partitions fail: the disk's", gone, eio, nil, unix.EIO, bootstate.Environment, 0},
	} {
		b := &boot{log: newLogger(io.Discard), rep: &report.Report{}}
		remounts := 0
		err := b.initReadFault(&image{target: c.target, dataDev: c.target.DataDev},
			func() error { return c.lookup }, func() error { remounts++; return c.remount })
		if remounts != c.remounts || (c.want == nil) != (err == nil) || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, mounted again %d times; want %v, %d", c.name, err, remounts, c.want, c.remounts)
		}
		if c.class != 0 && bootstate.ClassOf(err) != c.class {
			t.Errorf("%s: class %v, want %v", c.name, bootstate.ClassOf(err), c.class)
		}
		if said := strings.Contains(strings.Join(b.rep.Warnings, "\n"), "mounting the image again"); said != (c.remounts > 0) {
			t.Errorf("%s: warnings %q: the second mount said %v, want %v", c.name, b.rep.Warnings, said, c.remounts > 0)
		}
	}
}

// TestOpenVerityFault: dm-verity's first read failing with EIO is the
// image's (retired) only when the same blocks, read directly, do not match
// the root hash; when they cannot be read it is the disk's; when they
// match, the device is opened again, and a second such failure is the
// disk's or the device-mapper's. A roothash= typed on the command line
// that does not match is the command line's. Anything but an EIO is the
// device-mapper's.
func TestOpenVerityFault(t *testing.T) {
	eio := fmt.Errorf("dm-verity keel-root-a: first read failed: %w", unix.EIO)
	mismatch := fmt.Errorf("verity: read directly, data block 0 does not match level 0: %w", verity.ErrMismatch)
	unreadable := errors.New("reading 4096 bytes of /dev/vda1 at byte 0: input/output error")
	for _, c := range []struct {
		name    string
		opens   []error // the results of each open, in turn
		check   error
		cmdline bool
		opened  bool // the device is returned, reason in the warnings
		want    bootstate.Class
		reason  string
	}{
		{"opens", []error{nil}, nil, false, true, 0, ""},
		{"EIO once, blocks match", []error{eio, nil}, nil, false, true, 0, "opening it again"},
		{"EIO twice, blocks match", []error{eio, eio}, nil, false, false, bootstate.Environment, "twice, while the same blocks read directly match the root hash"},
		{"EIO, blocks do not match", []error{eio}, mismatch, false, false, bootstate.Image, "does not match level 0"},
		{"EIO, blocks do not match a typed roothash=", []error{eio}, mismatch, true, false, bootstate.Environment, "does not match level 0"},
		{"EIO, blocks cannot be read", []error{eio}, unreadable, false, false, bootstate.Environment, "read directly, the slot's partitions fail too"},
		{"not an EIO", []error{unix.ENXIO}, nil, false, false, bootstate.Environment, ""},
	} {
		b := &boot{log: newLogger(io.Discard), rep: &report.Report{}}
		img := &image{dataDev: "/dev/vda1", target: verity.Target{Name: "keel-root-a"}}
		if c.cmdline {
			img.hashFrom = "cmdline"
		}
		opens := 0
		open := func(verity.Target) (string, error) {
			opens++
			if opens > len(c.opens) {
				t.Fatalf("%s: opened %d times, want %d", c.name, opens, len(c.opens))
			}
			if err := c.opens[opens-1]; err != nil {
				return "", err
			}
			return "/dev/mapper/keel-root-a", nil
		}
		mapped, err := b.openVerity(img, open, func(verity.Target) error { return c.check })
		if opens != len(c.opens) {
			t.Errorf("%s: opened %d times, want %d", c.name, opens, len(c.opens))
		}
		if c.opened {
			if err != nil || mapped != "/dev/mapper/keel-root-a" || !strings.Contains(strings.Join(b.rep.Warnings, "\n"), c.reason) {
				t.Errorf("%s: %q, %v, warnings %q: want the device, %q said", c.name, mapped, err, b.rep.Warnings, c.reason)
			}
			continue
		}
		if got := bootstate.ClassOf(err); got != c.want || mapped != "" || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %q, %v (%v), want class %v mentioning %q", c.name, mapped, err, got, c.want, c.reason)
		}
	}
}

// TestSlotFits: a header asking for blocks larger than the page size is
// the image's fault; partitions smaller than the header says are named
// before dm-verity is opened (it said EINVAL or EIO), an environment fault:
// a disk reporting less than it holds must not retire a good slot.
func TestSlotFits(t *testing.T) {
	p := verity.Params{DataBlocks: 100}.WithDefaults()
	img := &image{dataDev: "/dev/vda2", hashDev: "/dev/vda3", target: verity.Target{
		Name: "keel-root-a", DataDev: "/dev/vda2", HashDev: "/dev/vda3", HashOffset: 4096, Params: p}}
	dataSize, hashSize := int64(100*4096), int64(4096+verity.HashDeviceSize(p))
	sizes := func(d, h int64, err error) func(string) (int64, error) {
		return func(dev string) (int64, error) {
			if dev == "/dev/vda2" {
				return d, err
			}
			return h, err
		}
	}
	for _, c := range []struct {
		name     string
		img      *image
		pageSize int
		size     func(string) (int64, error)
		class    bootstate.Class
		want     string
	}{
		{name: "fits", img: img, pageSize: 4096, size: sizes(dataSize, hashSize, nil)},
		{name: "larger partitions", img: img, pageSize: 4096, size: sizes(dataSize+1<<20, hashSize+1<<20, nil)},
		{name: "short data partition", img: img, pageSize: 4096, size: sizes(dataSize-4096, hashSize, nil),
			class: bootstate.Environment, want: "the data device /dev/vda2 holds 405504 bytes, the image 409600"},
		{name: "short hash partition", img: img, pageSize: 4096, size: sizes(dataSize, hashSize-1, nil),
			class: bootstate.Environment, want: "the hash device /dev/vda3 holds"},
		{name: "size unreadable", img: img, pageSize: 4096, size: sizes(0, 0, errors.New("size of /dev/vda2: EIO")),
			class: bootstate.Environment, want: "size of /dev/vda2: EIO"},
		{name: "blocks above the page size", img: img, pageSize: 2048, size: sizes(dataSize, hashSize, nil),
			class: bootstate.Image, want: "data block size 4096 is larger than the page size 2048"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := slotFits(c.img, c.pageSize, c.size)
			if c.want == "" {
				if err != nil {
					t.Fatalf("slotFits: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || bootstate.ClassOf(err) != c.class {
				t.Errorf("slotFits: %v (%v), want %v naming %q", err, bootstate.ClassOf(err), c.class, c.want)
			}
		})
	}
}
