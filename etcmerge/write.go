// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// put writes src at dst: a file (with data instead of src's content when
// data is not nil), a symlink or a whiteout, with src's ownership, mode,
// extended attributes and times.
func put(dst string, src entry, data []byte) error {
	var err error
	switch src.kind {
	case File:
		if err = putFile(dst, src, data); err != nil {
			return fmt.Errorf("write %s: %w", dst, err)
		}
		return nil
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

// putFile writes a file with src's owner, mode, extended attributes and
// times, all set through its descriptor (no second lookup of dst); the
// times last, after the write that changed them.
func putFile(dst string, src entry, data []byte) error {
	large := data == nil && src.st.Size > maxContent
	if data == nil && !large {
		var err error
		if data, err = src.content(); err != nil {
			return err
		}
	}
	fd, err := unix.Open(dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, src.mode()&0o777)
	if err != nil {
		return err
	}
	if large {
		err = copyData(fd, src.path)
	}
	for len(data) > 0 && err == nil {
		var n int
		if n, err = unix.Write(fd, data); err == nil {
			data = data[n:]
		}
	}
	if err == nil {
		err = fileMeta(fd, src)
	}
	if err == nil {
		ts := []unix.Timespec{src.st.Atim, src.st.Mtim}
		if err = unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); errors.Is(err, unix.EINVAL) {
			err = setTimes(dst, src) // a kernel before 5.8: no AT_EMPTY_PATH here
		} else if err != nil {
			err = &fs.PathError{Op: "futimens", Path: dst, Err: err}
		}
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}

// fileMeta gives the open file fd src's owner, mode and extended
// attributes. The file was created with src's permission bits (less the
// umask, so never more open than src): the owner and mode are set only
// when they differ, as they mostly do not, each change being a metadata
// write of the data file system. The mode is set after chown, which clears
// setuid and setgid.
func fileMeta(fd int, src entry) error {
	xs, err := src.xattrs()
	if err != nil {
		return err
	}
	if err := dropInherited(xs, false, func(name string) error { return unix.Fremovexattr(fd, name) }); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Uid != src.st.Uid || st.Gid != src.st.Gid {
		if err := unix.Fchown(fd, int(src.st.Uid), int(src.st.Gid)); err != nil {
			return err
		}
		st.Mode &^= unix.S_ISUID | unix.S_ISGID
	}
	if st.Mode&0o7777 != src.mode() {
		if err := unix.Fchmod(fd, src.mode()); err != nil {
			return err
		}
	}
	for name, v := range xs {
		if err := setXattr(name, func() error { return unix.Fsetxattr(fd, name, v, 0) }); err != nil {
			return err
		}
	}
	return nil
}

// setXattr runs set, which sets the attribute name; a kind of attribute
// the data filesystem does not keep is left out (as when /var is seeded).
func setXattr(name string, set func() error) error {
	err := set()
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("set xattr %s: %w", name, err)
	}
	return nil
}

// dropInherited removes from an entry just made the POSIX ACLs that its
// source, whose attributes are src, has not: it inherited them from its
// directory's default ACL (a file of mode 0640 with none would come out
// readable by whom the default names). remove removes one attribute;
// dir says the entry is a directory, which inherits a default ACL too.
func dropInherited(src map[string][]byte, dir bool, remove func(name string) error) error {
	names := []string{"system.posix_acl_access"}
	if dir {
		names = append(names, "system.posix_acl_default")
	}
	for _, name := range names {
		if _, ok := src[name]; ok {
			continue
		}
		if err := remove(name); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("remove xattr %s: %w", name, err)
		}
	}
	return nil
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

// opaqueXattr marks an upper directory that hides the lower one: keel
// mounts its overlays in the trusted namespace.
const opaqueXattr = overlayXattr + "opaque"

// copyTree copies the base entry src to dst, a directory with all it
// holds; a special file is not carried.
func copyTree(src, dst string) error {
	e, err := lookup(src)
	if err != nil {
		return err
	}
	switch e.kind {
	case File, Symlink:
		return put(dst, e, nil)
	case Dir:
	default:
		return nil
	}
	if err := mkdir(dst, e); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, d := range ents {
		if err := copyTree(filepath.Join(src, d.Name()), filepath.Join(dst, d.Name())); err != nil {
			return err
		}
	}
	return setTimes(dst, e)
}

// resetMeta gives the directory dst, an in-place copy of a local one,
// src's owner, mode and extended attributes, as mkdir would: the
// attributes an administrator sets (comparedAttr) that src lacks go.
func resetMeta(dst string, src entry) error {
	have, err := allXattrs(dst)
	if err != nil {
		return err
	}
	want, err := src.xattrs()
	if err != nil {
		return err
	}
	for name := range have {
		if _, ok := want[name]; ok || !comparedAttr(name) {
			continue
		}
		if err := unix.Lremovexattr(dst, name); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("%s: remove xattr %s: %w", dst, name, err)
		}
	}
	return setMeta(dst, src, false)
}

// setMeta gives dst src's owner, mode (after chown, which clears setuid)
// and extended attributes, and its times when times is set.
func setMeta(dst string, src entry, times bool) error {
	if err := os.Lchown(dst, int(src.st.Uid), int(src.st.Gid)); err != nil {
		return err
	}
	xs, err := src.xattrs()
	if err != nil {
		return err
	}
	if src.kind != Symlink {
		if err := dropInherited(xs, src.kind == Dir, func(name string) error { return unix.Lremovexattr(dst, name) }); err != nil {
			return fmt.Errorf("%s: %w", dst, err)
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, dst, src.mode(), 0); err != nil {
			return &fs.PathError{Op: "chmod", Path: dst, Err: err}
		}
	}
	for name, v := range xs {
		if err := setXattr(name, func() error { return unix.Lsetxattr(dst, name, v, 0) }); err != nil {
			return fmt.Errorf("%s: %w", dst, err)
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

// dropStale removes from dst, an in-place copy of the local entry src, the
// attributes dropXattr names (they point into the old lower layer).
func dropStale(dst string, src entry) error {
	for name := range src.xa {
		if !dropXattr(name) {
			continue
		}
		if err := unix.Lremovexattr(dst, name); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("%s: remove xattr %s: %w", dst, name, err)
		}
	}
	return nil
}

// copyData writes the bytes of the regular file src to the empty file fd
// at the same offsets, in streamBlock reads, one data extent at a time
// (SEEK_DATA, SEEK_HOLE): a hole stays a hole, so a sparse 64 GiB file is
// not written out to its size. A file system that cannot tell its holes
// has one extent, the whole file. fd stays the caller's to close.
func copyData(fd int, src string) error {
	f, err := openRegular(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size, sfd := fi.Size(), int(f.Fd())
	buf := make([]byte, streamBlock)
	for off := int64(0); off < size; {
		start, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // a hole to the end
		}
		end := size
		if err != nil {
			start = off // no SEEK_DATA here: all data
		} else if end, err = unix.Seek(sfd, start, unix.SEEK_HOLE); err != nil {
			end = size
		}
		if err := copyRange(fd, f, buf, start, min(end, size)); err != nil {
			return err
		}
		off = end
	}
	return unix.Ftruncate(fd, size)
}

// copyRange copies the bytes [start, end) of src to fd at the same offsets.
func copyRange(fd int, src *os.File, buf []byte, start, end int64) error {
	for off := start; off < end; {
		n, err := src.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		for done := 0; done < n; {
			w, werr := unix.Pwrite(fd, buf[done:n], off+int64(done))
			if errors.Is(werr, unix.EINTR) {
				continue
			}
			if werr != nil {
				return werr
			}
			done += w
		}
		off += int64(n)
		if err == io.EOF {
			return nil // the file shrank since: what is left is written
		}
		if err != nil {
			return err
		}
	}
	return nil
}
