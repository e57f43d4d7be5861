// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keel-boot/keel/initramfs"
)

// writeImage writes prefix (the precompressed init segment, or nothing)
// and the compressed archive to out atomically: a temporary file in the
// same directory, fsynced, renamed over out. A failed build leaves no
// image, and a reader never sees half of one.
func writeImage(out string, prefix []byte, a initramfs.Archive, c initramfs.Compression, mtime uint32) (int64, error) {
	dir := filepath.Dir(out)
	f, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("--out %s: %w", out, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(prefix); err != nil {
		return 0, fmt.Errorf("%s: %w", tmp, err)
	}
	if err := writeArchive(f, a, c, mtime); err != nil {
		return 0, err
	}
	if err := f.Chmod(0o644); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("%s: fsync: %w", tmp, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, err
	}
	ok = true
	return fi.Size(), syncDir(dir)
}

func writeArchive(f *os.File, a initramfs.Archive, c initramfs.Compression, mtime uint32) error {
	// The archive is made in memory first (the generic image's is 11 MB):
	// its size chooses the compression level.
	var raw bytes.Buffer
	if err := a.Write(&raw, initramfs.WriteOptions{Mtime: mtime}); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	cw, err := initramfs.NewWriterFor(bw, c, raw.Len())
	if err != nil {
		return err
	}
	if _, err := raw.WriteTo(cw); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("%s: %w", c, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	return nil
}

// syncDir makes the rename durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", dir, err)
	}
	return nil
}
