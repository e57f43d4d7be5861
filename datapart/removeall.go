// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// removeAll removes the directory rel under root and everything in it,
// holding two descriptors at most whatever the tree's depth, in time
// linear in the tree. os.Root's RemoveAll holds one per level: a tree a
// user nests 4,100 deep in /tmp (on the persistent root, where systemd
// clears /tmp only after keel ran) failed it with EMFILE at PID 1's
// open-file limit, and when that tree was in the old upper the /etc merge
// copies from, the merge failed at every boot after an update: the
// machine ran with the new image's /etc for good.
//
// It goes down one directory at a time (openat, O_NOFOLLOW: a symlink is
// unlinked, never followed) and back up through "..", checking that the
// directory reached is the one it came from (device and inode, kept per
// level with the entry's name); entries that are not directories are
// unlinked where they are read.
func removeAll(root *os.Root, rel string) error {
	top, err := root.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	fd, err := unix.Dup(int(top.Fd()))
	top.Close()
	if err != nil {
		return err
	}
	type level struct {
		name     string
		dev, ino uint64
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	path := []level{{name: rel, dev: st.Dev, ino: st.Ino}}
	where := func() string { // for errors: the directory fd is
		p := rel
		for _, l := range path[1:] {
			p += "/" + l.name
		}
		return p
	}
	buf := make([]byte, 8<<10)
	for {
		names, err := direntNames(fd, buf)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("reading %s: %w", where(), err)
		}
		if len(names) == 0 {
			if len(path) == 1 {
				unix.Close(fd)
				return root.Remove(rel)
			}
			here := path[len(path)-1]
			parent, err := unix.Openat(fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("going back up from %s: %w", where(), err)
			}
			fd = parent
			path = path[:len(path)-1]
			up := path[len(path)-1]
			if err := unix.Fstat(fd, &st); err != nil || st.Dev != up.dev || st.Ino != up.ino {
				unix.Close(fd)
				return errors.Join(fmt.Errorf("going back up to %s: the directory moved while it was removed", where()), err)
			}
			if err := unix.Unlinkat(fd, here.name, unix.AT_REMOVEDIR); err != nil {
				unix.Close(fd)
				return &os.PathError{Op: "remove", Path: where() + "/" + here.name, Err: err}
			}
			continue
		}
		for _, n := range names {
			err := unix.Unlinkat(fd, n, 0)
			if err == nil || errors.Is(err, unix.ENOENT) {
				continue
			}
			if !errors.Is(err, unix.EISDIR) {
				unix.Close(fd)
				return &os.PathError{Op: "remove", Path: where() + "/" + n, Err: err}
			}
			child, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == nil {
				err = unix.Fstat(child, &st)
				if err != nil {
					unix.Close(child)
				}
			}
			if err != nil {
				unix.Close(fd)
				return &os.PathError{Op: "open", Path: where() + "/" + n, Err: err}
			}
			unix.Close(fd)
			fd = child
			path = append(path, level{name: n, dev: st.Dev, ino: st.Ino})
			break // the rest of this directory is read again on the way back up
		}
	}
}

// direntNames reads the names in directory fd from its start, "." and ".."
// left out, as many as one buffer holds: enough to make progress, since
// what was read is removed before the next call.
func direntNames(fd int, buf []byte) ([]string, error) {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return nil, err
	}
	n, err := unix.ReadDirent(fd, buf)
	if err != nil {
		return nil, err
	}
	_, _, names := unix.ParseDirent(buf[:n], -1, nil)
	return names, nil
}
