// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/initramfs"
)

// makeSegment writes INIT.cpio.zst as make does: init-segment, then zstd
// (the CLI at -19 when installed, else keel's own zstd writer).
func makeSegment(t *testing.T, init string) {
	t.Helper()
	var cpio bytes.Buffer
	if err := run([]string{"init-segment", "--init", init}, &cpio, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if zstd, err := exec.LookPath("zstd"); err == nil {
		cmd := exec.Command(zstd, "-19", "-q", "-c")
		cmd.Stdin = &cpio
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.WriteFile(init+segmentSuffix, out, 0o644))
		return
	}
	var z bytes.Buffer
	w, err := initramfs.NewWriter(&z, initramfs.Zstd)
	must(t, err)
	_, err = w.Write(cpio.Bytes())
	must(t, err)
	must(t, w.Close())
	must(t, os.WriteFile(init+segmentSuffix, z.Bytes(), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestInitSegment(t *testing.T) {
	dir := t.TempDir()
	init := dummyInit(t)
	makeSegment(t, init)
	seg, err := os.ReadFile(init + segmentSuffix)
	must(t, err)
	img := filepath.Join(dir, "a.img")
	out := mkinitrd(t, "--out", img, "--kver", "none", "--init", init, "--no-default-modules")
	if !strings.Contains(out, "init precompressed yes") {
		t.Errorf("summary %q: want the segment used", out)
	}
	b, err := os.ReadFile(img)
	must(t, err)
	if !bytes.HasPrefix(b, seg) {
		t.Fatal("the image does not start with the init segment")
	}
	// Every file is there once, /init with the init's bytes, read across
	// both archives as the kernel reads them.
	files := readImage(t, img)
	want, err := os.ReadFile(init)
	must(t, err)
	if r := files["/init"]; r == nil || !bytes.Equal(r.Body, want) || r.Mode != initramfs.TypeRegular|0o755 {
		t.Fatalf("/init: %+v", r)
	}
	if files["/etc/keel/initrd.json"] == nil || files["/dev/console"] == nil {
		t.Error("the rest of the image is missing")
	}
	var listing bytes.Buffer
	must(t, run([]string{"ls", img}, &listing, os.Stderr))
	n := 0
	for _, l := range strings.Split(listing.String(), "\n") {
		if strings.HasPrefix(l, "-") && strings.HasSuffix(l, " /init") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("ls lists /init %d times:\n%s", n, listing.String())
	}
	// Reproducible: the same inputs give the same bytes.
	img2 := filepath.Join(dir, "b.img")
	mkinitrd(t, "--out", img2, "--kver", "none", "--init", init, "--no-default-modules")
	b2, err := os.ReadFile(img2)
	must(t, err)
	if !bytes.Equal(b, b2) {
		t.Error("two builds differ")
	}
}

// TestStaleInitSegment: a segment that does not hold this init as this
// build would write it is not used, and mkinitrd says why.
func TestStaleInitSegment(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, init string)
		env   string
		want  string
	}{
		{name: "rebuilt init", spoil: func(t *testing.T, init string) {
			must(t, os.WriteFile(init, []byte("#!/bin/sh\n# a newer init\n"), 0o755))
		}, want: "stale, rebuild it with make"},
		{name: "other mtime", env: "1700000000", want: "mtime 1700000000"},
		{name: "not zstd", spoil: func(t *testing.T, init string) {
			must(t, os.WriteFile(init+segmentSuffix, []byte("070701junk"), 0o644))
		}, want: "expected a zstd-compressed archive"},
		{name: "truncated", spoil: func(t *testing.T, init string) {
			b, err := os.ReadFile(init + segmentSuffix)
			must(t, err)
			must(t, os.WriteFile(init+segmentSuffix, b[:len(b)/2], 0o644))
		}}, // the decoder names the damage
	} {
		t.Run(tc.name, func(t *testing.T) {
			init := dummyInit(t)
			makeSegment(t, init)
			if tc.spoil != nil {
				tc.spoil(t, init)
			}
			if tc.env != "" {
				t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			}
			img := filepath.Join(t.TempDir(), "a.img")
			var stdout, stderr bytes.Buffer
			must(t, run([]string{"--out", img, "--kver", "none", "--init", init, "--no-default-modules"}, &stdout, &stderr))
			if !strings.Contains(stdout.String(), "init precompressed no") || !strings.Contains(stderr.String(), "compressing the init into the image instead") ||
				(tc.want != "" && !strings.Contains(stderr.String(), tc.want)) {
				t.Errorf("stdout %q stderr %q, want the segment refused (%q)", stdout.String(), stderr.String(), tc.want)
			}
			want, err := os.ReadFile(init)
			must(t, err)
			if r := readImage(t, img)["/init"]; r == nil || !bytes.Equal(r.Body, want) {
				t.Error("the image lacks the current init")
			}
		})
	}
}

func TestNoSegmentIsQuiet(t *testing.T) {
	init := dummyInit(t)
	img := filepath.Join(t.TempDir(), "a.img")
	var stdout, stderr bytes.Buffer
	must(t, run([]string{"--out", img, "--kver", "none", "--init", init, "--no-default-modules"}, &stdout, &stderr))
	if stderr.Len() != 0 || !strings.Contains(stdout.String(), "init precompressed no") {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	// gzip images never use a segment (the kernel would need both
	// decompressors); the segment is just ignored.
	makeSegment(t, init)
	stdout.Reset()
	must(t, run([]string{"--out", img, "--kver", "none", "--init", init, "--no-default-modules", "--compress", "gzip"}, &stdout, &stderr))
	if !strings.Contains(stdout.String(), "init precompressed no") {
		t.Errorf("gzip: %q", stdout.String())
	}
}
