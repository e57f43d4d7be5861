// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// put writes src at dst: a file (with data instead of src's content when
// data is not nil), a symlink or a whiteout, with src's ownership, mode,
// extended attributes and times.
func put(dst string, src entry, data []byte) error {
	var err error
	switch src.kind {
	case File:
		err = putFile(dst, src, data)
	case Symlink:
		var target string
		if target, err = os.Readlink(src.path); err == nil {
			err = os.Symlink(target, dst)
		}
	case Whiteout:
		err = unix.Mknod(dst, unix.S_IFCHR|src.mode(), 0)
	default:
		return fmt.Errorf("%s: a %s is not carried", src.path, src.kind)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return setMeta(dst, src, true)
}

func putFile(dst string, src entry, data []byte) error {
	if data == nil {
		var err error
		if data, err = os.ReadFile(src.path); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mkdir makes the directory dst like src; its times are set by setTimes
// once its entries are written.
// An opaque directory stays opaque: its overlay.opaque attribute is copied
// with the others.
func mkdir(dst string, src entry) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return setMeta(dst, src, false)
}

// setMeta gives dst src's owner, mode (after chown, which clears setuid)
// and extended attributes, and its times when times is set.
func setMeta(dst string, src entry, times bool) error {
	if err := os.Lchown(dst, int(src.st.Uid), int(src.st.Gid)); err != nil {
		return err
	}
	if src.kind != Symlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, src.mode(), 0); err != nil {
			return &fs.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	xs, err := xattrs(src.path)
	if err != nil {
		return err
	}
	for name, v := range xs {
		err := unix.Lsetxattr(dst, name, v, 0)
		if errors.Is(err, unix.ENOTSUP) {
			continue // the data filesystem does not keep this kind (as when /var is seeded)
		}
		if err != nil {
			return fmt.Errorf("set xattr %s on %s: %w", name, dst, err)
		}
	}
	if !times {
		return nil
	}
	return setTimes(dst, src)
}

// setTimes copies src's access and modification times to dst.
func setTimes(dst string, src entry) error {
	ts := []unix.Timespec{src.st.Atim, src.st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: dst, Err: err}
	}
	return nil
}
