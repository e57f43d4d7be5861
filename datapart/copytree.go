// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// copier copies a tree with everything a /var needs to keep working: file
// types (device nodes, fifos, sockets, symlinks), hard links, ownership,
// modes including setuid and sticky bits, timestamps and extended
// attributes. It stays on the source's filesystem, like `cp -ax`.
type copier struct {
	dev   uint64
	links map[[2]uint64]string // (dev, ino) of multiply linked files → first copy
}

// copyTree copies src to dst, which must not exist.
func copyTree(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	c := &copier{dev: st.Dev, links: map[[2]uint64]string{}}
	return c.copy(src, dst, &st)
}

func (c *copier) copy(src, dst string, st *unix.Stat_t) error {
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		err = c.copyDir(src, dst)
	case unix.S_IFREG:
		if done, lerr := c.link(dst, st); done || lerr != nil {
			return lerr
		}
		err = copyFile(src, dst)
	case unix.S_IFLNK:
		err = copySymlink(src, dst)
	default: // char and block devices, fifos, sockets
		err = unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	}
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	if err := copyMeta(src, dst, st); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return nil
}

// link makes dst a hard link to an earlier copy of the same file; done is
// false when this is the first time the file is seen.
func (c *copier) link(dst string, st *unix.Stat_t) (done bool, err error) {
	if st.Nlink < 2 {
		return false, nil
	}
	key := [2]uint64{st.Dev, st.Ino}
	if first, ok := c.links[key]; ok {
		return true, os.Link(first, dst)
	}
	c.links[key] = dst
	return false, nil
}

// copyDir copies a directory's entries; entries on another filesystem
// (something mounted inside the source) are skipped.
func (c *copier) copyDir(src, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		s, d := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(s, &st); err != nil {
			return err
		}
		if st.Dev != c.dev {
			continue
		}
		if err := c.copy(s, d, &st); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

func copySymlink(src, dst string) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// copyMeta copies ownership, extended attributes, mode and times, in that
// order: chown clears setuid bits and security.capability, so both come
// after it; times come last because the other calls change ctime only but
// directory mtimes must not be touched after their entries are made.
func copyMeta(src, dst string, st *unix.Stat_t) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("lchown: %w", err)
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// copyXattrs copies extended attributes. A filesystem without xattr
// support on either side is not an error: the attributes are optional.
func copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil || len(names) == 0 {
		return err
	}
	for _, name := range names {
		val, err := getXattr(src, name)
		if err != nil {
			return fmt.Errorf("reading xattr %s: %w", name, err)
		}
		err = unix.Lsetxattr(dst, name, val, 0)
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("setting xattr %s: %w", name, err)
		}
	}
	return nil
}

func listXattrs(path string) ([]string, error) {
	buf, err := xattrBuf(func(b []byte) (int, error) { return unix.Llistxattr(path, b) })
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	// The list is NUL-terminated names.
	return strings.FieldsFunc(string(buf), func(r rune) bool { return r == 0 }), nil
}

func getXattr(path, name string) ([]byte, error) {
	return xattrBuf(func(b []byte) (int, error) { return unix.Lgetxattr(path, name, b) })
}

// xattrBuf calls f with a buffer of the size f reports it needs, retrying
// when the value grew in between.
func xattrBuf(f func([]byte) (int, error)) ([]byte, error) {
	for range 3 {
		n, err := f(nil)
		if err != nil || n == 0 {
			return nil, err
		}
		b := make([]byte, n)
		n, err = f(b)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return b[:n], nil
	}
	return nil, unix.ERANGE
}
