// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/keel-boot/keel/initramfs"
)

// list prints one line per entry: mode, size (or device number), path and,
// for symlinks, the target.
func list(file string, w io.Writer) error {
	return walk(file, func(r *initramfs.Record) (bool, error) {
		size := fmt.Sprint(len(r.Body))
		if t := r.Type(); t == initramfs.TypeChar || t == initramfs.TypeBlock {
			size = fmt.Sprintf("%d,%d", r.RdevMajor, r.RdevMinor)
		}
		line := fmt.Sprintf("%s %9s /%s", modeString(r.Mode), size, r.Name)
		if r.Type() == initramfs.TypeSymlink {
			line += " -> " + string(r.Body)
		}
		_, err := fmt.Fprintln(w, line)
		return true, err
	})
}

// cat prints the body of one regular file of the image.
func cat(file, path string, w io.Writer) error {
	want, err := initramfs.CleanPath(path)
	if err != nil {
		return err
	}
	found := false
	err = walk(file, func(r *initramfs.Record) (bool, error) {
		if r.Name != want {
			return true, nil
		}
		found = true
		if r.Type() != initramfs.TypeRegular {
			return false, fmt.Errorf("%s: /%s is not a regular file (%s)", file, want, modeString(r.Mode))
		}
		_, err := w.Write(r.Body)
		return false, err
	})
	if err == nil && !found {
		err = fmt.Errorf("%s: no /%s in the image", file, want)
	}
	return err
}

// walk calls fn for each record of the image until fn returns false.
func walk(file string, fn func(*initramfs.Record) (bool, error)) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := initramfs.Decompress(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer r.Close()
	rd := initramfs.NewReader(r)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		more, err := fn(rec)
		if err != nil || !more {
			return err
		}
	}
}

// modeString renders a stat mode as ls -l does ("drwxr-xr-x", "crw-------").
func modeString(mode uint32) string {
	types := map[uint32]byte{
		initramfs.TypeRegular: '-', initramfs.TypeDir: 'd', initramfs.TypeSymlink: 'l',
		initramfs.TypeChar: 'c', initramfs.TypeBlock: 'b', 0o010000: 'p', 0o140000: 's',
	}
	t, ok := types[mode&initramfs.TypeMask]
	if !ok {
		t = '?'
	}
	b := []byte{t}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		c := byte('-')
		if mode&(1<<(8-i)) != 0 {
			c = rwx[i]
		}
		b = append(b, c)
	}
	special := []struct {
		bit      uint32
		pos      int
		set, off byte
	}{{0o4000, 3, 's', 'S'}, {0o2000, 6, 's', 'S'}, {0o1000, 9, 't', 'T'}}
	for _, s := range special {
		if mode&s.bit != 0 {
			if b[s.pos] == '-' {
				b[s.pos] = s.off
			} else {
				b[s.pos] = s.set
			}
		}
	}
	return string(b)
}
