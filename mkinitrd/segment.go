// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/keel-boot/keel/initramfs"
)

// The init segment is /init alone as a complete newc archive compressed
// with zstd at its highest level, made once per init build (`make`:
// `mkinitrd init-segment | zstd -19`) and stored next to the init as
// INIT.cpio.zst. mkinitrd puts it in front of the rest of the image, which
// it compresses at the encoder's "better" level; the kernel unpacks concatenated
// archives one after the other. The init is half of a host-only image:
// compressing it hard once instead of at the image's level in every
// mkinitrd run makes every image 0.22 MB smaller, and mkinitrd faster.
const segmentSuffix = ".cpio.zst"

// writeInitSegment writes the uncompressed archive holding only /init, as
// the image would hold it.
func writeInitSegment(w io.Writer, init string, mtime uint32) error {
	a := initramfs.Archive{}
	if err := a.Add("/init", initramfs.File(init, 0o755)); err != nil {
		return err
	}
	return a.Write(w, initramfs.WriteOptions{Mtime: mtime})
}

// errNoSegment means the init has no segment next to it.
var errNoSegment = errors.New("no init segment")

// loadInitSegment reads INIT.cpio.zst and checks that it holds exactly
// /init as this build would write it: the same bytes as the init file,
// mode 0755, owner 0:0, the build's mtime. A segment that does not is
// stale (the init was rebuilt) and must not be used.
func loadInitSegment(init string, mtime uint32) ([]byte, error) {
	path := init + segmentSuffix
	seg, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoSegment
	}
	if err != nil {
		return nil, err
	}
	if kind, err := initramfs.Detect(seg); err != nil || kind != "zstd" {
		return nil, fmt.Errorf("%s: expected a zstd-compressed archive", path)
	}
	r, err := initramfs.Decompress(bytes.NewReader(seg))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer r.Close()
	recs, err := initramfs.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var want bytes.Buffer
	if err := writeInitSegment(&want, init, mtime); err != nil {
		return nil, err
	}
	wantRecs, err := initramfs.ReadAll(&want)
	if err != nil {
		return nil, err
	}
	if len(recs) != 1 || len(wantRecs) != 1 || !sameRecord(recs[0], wantRecs[0]) {
		return nil, fmt.Errorf("%s does not hold %s as /init (mode 0755, mtime %d): stale, rebuild it with make", path, init, mtime)
	}
	return seg, nil
}

func sameRecord(a, b *initramfs.Record) bool {
	return a.Name == b.Name && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Nlink == b.Nlink && a.Mtime == b.Mtime && bytes.Equal(a.Body, b.Body)
}

// initSegment returns the segment to put in front of a zstd image, or nil
// when the init is compressed into the image itself (other compressions,
// no segment, or a stale one, which is reported).
func initSegment(o *options, stderr io.Writer) []byte {
	if o.compress != initramfs.Zstd {
		return nil
	}
	seg, err := loadInitSegment(o.init, o.mtime)
	if err != nil {
		if !errors.Is(err, errNoSegment) {
			fmt.Fprintf(stderr, "mkinitrd: %v; compressing the init into the image instead\n", err)
		}
		return nil
	}
	return seg
}

// initSegmentCmd is `mkinitrd init-segment --init PATH [--out FILE]`: the
// uncompressed archive for `zstd -19` to turn into PATH.cpio.zst.
func initSegmentCmd(args []string, stdout io.Writer) error {
	var init, out string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--init" && i+1 < len(args):
			init, i = args[i+1], i+1
		case args[i] == "--out" && i+1 < len(args):
			out, i = args[i+1], i+1
		default:
			return fmt.Errorf("usage: mkinitrd init-segment --init PATH [--out FILE]: unexpected %q", args[i])
		}
	}
	if init == "" {
		return fmt.Errorf("usage: mkinitrd init-segment --init PATH [--out FILE]: --init is required")
	}
	mtime, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := writeInitSegment(&buf, init, mtime); err != nil {
		return err
	}
	if out == "" || out == "-" {
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}
