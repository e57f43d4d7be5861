// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// removeAll removes the directory rel under root and everything in it,
// with a bounded number of descriptors whatever the tree's depth.
// os.Root's RemoveAll holds one per level: a tree a user nests 4,100 deep
// in /tmp (on the persistent root, where systemd clears /tmp only after
// keel ran) failed it with EMFILE at PID 1's open-file limit, and when
// that tree was in the old upper the /etc merge copies from, the merge
// failed at every boot after an update: the machine ran with the new
// image's /etc for good.
//
// It goes down one directory at a time (openat, O_NOFOLLOW: a symlink is
// unlinked, never followed), keeping the descriptors of the keptLevels
// directories nearest the top open, and back up through the kept
// descriptor or, deeper, through "..", checking that the directory reached
// is the one it came from (device and inode, kept per level with the
// entry's name). Entries that are not directories are unlinked where they
// are read. A directory counts as empty only after a whole read of it,
// from its start, that found nothing.
func removeAll(root *os.Root, rel string) error { return removeAllWith(root, rel, unix.Unlinkat) }

// removeAllWith is removeAll with unlink for unlinkat(2) (tests: a name
// that the directory lists but no lookup finds).
func removeAllWith(root *os.Root, rel string, unlink func(dirfd int, name string, flags int) error) error {
	top, err := root.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	fd, err := unix.FcntlInt(top.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	top.Close()
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return err
	}
	r := &remover{rel: rel, fd: fd, path: []level{{name: rel, dev: st.Dev, ino: st.Ino, fd: -1}}, unlink: unlink}
	defer r.close()
	if err := r.run(); err != nil {
		return err
	}
	r.close()
	return root.Remove(rel)
}

// keptLevels is how many directories from the top keep their descriptor
// while removeAll is below them: a wide tree near the top is read once, a
// deep one costs no more descriptors.
const keptLevels = 32

// level is one directory on the way down: its name in its parent, its
// identity, its descriptor while the remover is below it (-1 when not
// kept, and for the directory being read), and the names of its last read
// not yet removed (kept with the descriptor: a wide directory is read
// once, not once per subdirectory).
type level struct {
	name     string
	dev, ino uint64
	fd       int
	pending  []string
}

type remover struct {
	rel  string
	fd   int     // the directory being read: path's last
	path []level // from rel down
	// dirty: fd's directory changed, or entries of it may have been
	// skipped, since its read last started at its beginning.
	dirty  bool
	unlink func(dirfd int, name string, flags int) error
}

func (r *remover) where() string {
	p := r.rel
	for _, l := range r.path[1:] {
		p += "/" + l.name
	}
	return p
}

func (r *remover) close() {
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
	for i := range r.path {
		if r.path[i].fd >= 0 {
			unix.Close(r.path[i].fd)
			r.path[i].fd = -1
		}
	}
}

func (r *remover) run() error {
	buf := make([]byte, 8<<10)
	for {
		here := &r.path[len(r.path)-1]
		if len(here.pending) > 0 {
			name := here.pending[0]
			here.pending = here.pending[1:]
			err := r.unlink(r.fd, name, 0)
			if err == nil {
				r.dirty = true
				continue
			}
			if errors.Is(err, unix.ENOENT) {
				// Gone already, or a name the directory lists and no
				// lookup finds (a NUL byte in it, written to the disk
				// by hand: the kernel's read passes it, Go's parse
				// cuts it there). Not a change: marked as one, the
				// directory was read again for ever, PID 1 spinning
				// (found by a hunting helper). It stays, and the
				// directory's removal fails, not empty: bounded.
				continue
			}
			if !errors.Is(err, unix.EISDIR) {
				return &os.PathError{Op: "remove", Path: r.where() + "/" + name, Err: err}
			}
			if err := r.down(name); err != nil {
				return err
			}
			continue
		}
		n, err := unix.ReadDirent(r.fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", r.where(), err)
		}
		if n > 0 {
			// A read may stop early (a signal pending: the Go runtime's
			// preemption), with "." and ".." only: read on.
			_, _, here.pending = unix.ParseDirent(buf[:n], -1, nil)
			continue
		}
		// The end of the directory.
		if r.dirty {
			if _, err := unix.Seek(r.fd, 0, 0); err != nil {
				return fmt.Errorf("reading %s: %w", r.where(), err)
			}
			r.dirty = false
			continue
		}
		if len(r.path) == 1 {
			return nil // rel is empty
		}
		if err := r.up(); err != nil {
			return err
		}
	}
}

// down makes the subdirectory name of the current directory the current one.
func (r *remover) down(name string) error {
	child, err := unix.Openat(r.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	var st unix.Stat_t
	if err == nil {
		if err = unix.Fstat(child, &st); err != nil {
			unix.Close(child)
		}
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: r.where() + "/" + name, Err: err}
	}
	here := &r.path[len(r.path)-1]
	if len(r.path) <= keptLevels {
		here.fd = r.fd
	} else {
		unix.Close(r.fd)
		here.pending = nil // read again from the start through ".."
	}
	r.fd = child
	r.path = append(r.path, level{name: name, dev: st.Dev, ino: st.Ino, fd: -1})
	r.dirty = false
	return nil
}

// up removes the current directory, now empty, and makes its parent the
// current one: its kept descriptor, or ".." checked against its identity.
func (r *remover) up() error {
	here := r.path[len(r.path)-1]
	parent := &r.path[len(r.path)-2]
	var fd int
	if parent.fd >= 0 {
		fd, parent.fd = parent.fd, -1
	} else {
		var err error
		fd, err = unix.Openat(r.fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("going back up from %s: %w", r.where(), err)
		}
	}
	unix.Close(r.fd)
	r.fd = fd
	r.path = r.path[:len(r.path)-1]
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != parent.dev || st.Ino != parent.ino {
		return errors.Join(fmt.Errorf("going back up to %s: the directory moved while it was removed", r.where()), err)
	}
	if err := r.unlink(fd, here.name, unix.AT_REMOVEDIR); err != nil {
		return &os.PathError{Op: "remove", Path: r.where() + "/" + here.name, Err: err}
	}
	r.dirty = true // here was removed since the read began
	return nil
}
