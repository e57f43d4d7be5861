// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/bootstate"
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
// disk's); an EIO they do not confirm is the image's (SquashFS says EIO for
// content it cannot decompress), with dm-verity or without.
func TestMountFault(t *testing.T) {
	dir := t.TempDir()
	data, hash := filepath.Join(dir, "data"), filepath.Join(dir, "hash")
	for name, size := range map[string]int{data: 2 * 4096, hash: 3 * 4096} {
		if err := os.WriteFile(name, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := verity.Target{Name: "keel-root-a", DataDev: data, HashDev: hash, HashOffset: 4096, Params: verity.Params{DataBlocks: 2}}
	gone := good
	gone.DataDev = filepath.Join(dir, "gone")
	eio := fmt.Errorf("mounting the image: %w", unix.EIO)
	for _, c := range []struct {
		name      string
		target    verity.Target
		verityOff bool
		err       error
		want      bootstate.Class
		reason    string
	}{
		{"no module", good, false, unix.ENODEV, bootstate.Environment, ""},
		{"not a squashfs", good, false, unix.EINVAL, bootstate.Image, "valid SquashFS"},
		{"EIO, partitions read fine", good, false, eio, bootstate.Image, "valid SquashFS"},
		{"EIO, partitions fail", gone, false, eio, bootstate.Environment, "read directly, the slot's partitions fail too"},
		{"EIO without dm-verity, device reads fine", good, true, eio, bootstate.Image, "valid SquashFS"},
		{"EIO without dm-verity, device fails", gone, true, eio, bootstate.Environment, "read directly, the slot's partitions fail too"},
	} {
		b := &boot{}
		b.cfg.VerityOff = c.verityOff
		err := b.mountFault(&image{target: c.target, dataDev: c.target.DataDev}, c.err)
		if got := bootstate.ClassOf(err); got != c.want || !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %v (%v), want class %v mentioning %q", c.name, err, got, c.want, c.reason)
		}
	}
}
