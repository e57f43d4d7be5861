// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// copier copies a tree with everything a /var needs to keep working: file
// types (device nodes, fifos, sockets, symlinks), hard links, ownership,
// modes including setuid and sticky bits, timestamps and extended
// attributes. It stays on the source's filesystem, like `cp -ax`.
//
// One walk makes the directories, symlinks and device nodes and hands the
// regular files to copyWorkers goroutines: a /var is hundreds of small
// files, each costing a dozen system calls, which under emulation cost more
// than the bytes they move, so two CPUs copy it in about half the time.
// Hard links are made once every file is copied, and the directories get
// their metadata last, deepest first, once all their entries exist.
type copier struct {
	dev   uint64
	links map[[2]uint64]string // (dev, ino) of multiply linked files → first copy
	files chan fileJob
	later []link    // hard links to make once the files are copied
	dirs  []fileJob // directories, deepest first, for their metadata

	mu  sync.Mutex
	err error // the first failure of a worker

	// progress, when set, is called after each file and directory is
	// copied, from any of the workers: the init renews its watchdog
	// lease, so that a long copy is not taken for a hang.
	progress func()
}

// copyWorkers is how many regular files are copied at once; each has a
// buffer of copyBuffer bytes (most files of a /var fit in one read).
const (
	copyWorkers = 4
	copyBuffer  = 128 << 10
)

type fileJob struct {
	src, dst string
	st       unix.Stat_t
	// at is the open directories holding src and dst, nil for a file
	// given by its full paths; a job holds a reference to it.
	at *dirPair
}

// dirPair is a source directory and its copy, open for the regular files
// in them: each file is then opened by its name alone (openat), not by a
// walk of its full path. The walk holds one reference while it lists the
// directory and each queued file one more; the last release closes both.
type dirPair struct {
	src, dst int
	refs     atomic.Int32
}

func (d *dirPair) hold() *dirPair {
	if d != nil {
		d.refs.Add(1)
	}
	return d
}

func (d *dirPair) release() {
	if d != nil && d.refs.Add(-1) == 0 {
		unix.Close(d.src)
		unix.Close(d.dst)
	}
}

// names gives the directory descriptors and names to open src and dst
// with: the pair's, or the current directory's and the full paths.
func (j fileJob) names() (srcDir int, srcName string, dstDir int, dstName string) {
	if j.at == nil {
		return unix.AT_FDCWD, j.src, unix.AT_FDCWD, j.dst
	}
	return j.at.src, filepath.Base(j.src), j.at.dst, filepath.Base(j.dst)
}

type link struct{ first, dst string }

// copyTree copies src to dst, which must not exist, calling progress (if
// not nil) as it goes.
func copyTree(src, dst string, progress func()) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if progress == nil {
		progress = func() {}
	}
	c := &copier{dev: st.Dev, links: map[[2]uint64]string{}, files: make(chan fileJob, copyWorkers), progress: progress}
	var wg sync.WaitGroup
	for range copyWorkers {
		wg.Add(1)
		go c.work(&wg)
	}
	err := c.copy(src, dst, &st, nil)
	close(c.files)
	wg.Wait()
	if err == nil {
		err = c.failure()
	}
	if err == nil {
		err = c.finish()
	}
	return err
}

// work copies the files it is handed; after a failure it only drains the
// queue. A panic is a failure of the copy, not of the process (PID 1).
func (c *copier) work(wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, copyBuffer)
	for j := range c.files {
		if c.failure() == nil {
			c.fail(c.copyFileJob(j, buf))
			c.tick()
		}
		j.at.release()
	}
}

func (c *copier) copyFileJob(j fileJob, buf []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("copying %s to %s: panic: %v", j.src, j.dst, r)
		}
	}()
	sd, sn, dd, dn := j.names()
	err = copyFile(sd, sn, dd, dn, j.st.Mode, buf, c.progress, func(in, out int, now *unix.Stat_t) error {
		return copyMeta(node{fd: in}, node{fd: out}, &j.st, now)
	})
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w", j.src, j.dst, err)
	}
	return nil
}

// metaErr copies j's metadata onto j.dst by path: directories, symlinks,
// device nodes (a regular file's goes through its descriptors, copyFile).
func metaErr(j fileJob) error {
	if err := copyMeta(node{path: j.src, fd: -1}, node{path: j.dst, fd: -1}, &j.st, nil); err != nil {
		return fmt.Errorf("copying %s to %s: %w", j.src, j.dst, err)
	}
	return nil
}

func (c *copier) fail(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *copier) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// finish makes the hard links, then gives the directories their metadata.
func (c *copier) finish() error {
	for _, l := range c.later {
		if err := os.Link(l.first, l.dst); err != nil {
			return fmt.Errorf("copying to %s: %w", l.dst, err)
		}
	}
	for _, d := range c.dirs {
		if err := metaErr(d); err != nil {
			return err
		}
	}
	return nil
}

// copy makes dst from src: a directory with its entries, a symlink or a
// device node at once, a regular file through the workers.
func (c *copier) copy(src, dst string, st *unix.Stat_t, at *dirPair) error {
	if err := c.failure(); err != nil {
		return err
	}
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err = c.copyDir(src, dst); err == nil {
			c.dirs = append(c.dirs, fileJob{src: src, dst: dst, st: *st})
		}
		return err
	case unix.S_IFREG:
		if !c.link(dst, st) {
			c.files <- fileJob{src, dst, *st, at.hold()}
		}
		return nil
	case unix.S_IFLNK:
		err = copySymlink(src, dst)
	default: // char and block devices, fifos, sockets
		err = unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	}
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return metaErr(fileJob{src: src, dst: dst, st: *st})
}

// link records dst as a hard link to an earlier copy of the same file, to
// be made by finish; it is false when this is the first time the file is
// seen.
func (c *copier) link(dst string, st *unix.Stat_t) bool {
	if st.Nlink < 2 {
		return false
	}
	key := [2]uint64{st.Dev, st.Ino}
	if first, ok := c.links[key]; ok {
		c.later = append(c.later, link{first, dst})
		return true
	}
	c.links[key] = dst
	return false
}

// copyDir copies a directory's entries, in name order; entries on another
// filesystem (something mounted inside the source) are skipped. The
// directory and its copy stay open while their files are copied: entries
// are stat'ed and files opened by name through those descriptors, not by
// their full paths (walking every component of two paths per file was
// half the copy's own CPU time on the host, BenchmarkCopyTree; under
// emulation the seed waits on the file systems more than on that,
// BENCHMARKS.md "Fourth pass").
func (c *copier) copyDir(src, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	at, err := openPair(src, dst)
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	defer at.release()
	names, err := readDirNames(at.src)
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, &os.PathError{Op: "readdir", Path: src, Err: err})
	}
	for _, name := range names {
		s, d := filepath.Join(src, name), filepath.Join(dst, name)
		var st unix.Stat_t
		if err := unix.Fstatat(at.src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("copying %s: %w", s, err)
		}
		if st.Dev != c.dev {
			continue
		}
		if err := c.copy(s, d, &st, at); err != nil {
			return err
		}
	}
	c.tick()
	return nil
}

// tick calls progress; a panic there fails the copy, as one in a copy does,
// and never reaches PID 1.
func (c *copier) tick() {
	defer func() {
		if r := recover(); r != nil {
			c.fail(fmt.Errorf("copy progress: panic: %v", r))
		}
	}()
	c.progress()
}

// openPair opens the directories src and dst, never through a symlink,
// holding one reference.
func openPair(src, dst string) (*dirPair, error) {
	const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW
	s, err := unix.Open(src, dirFlags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: src, Err: err}
	}
	d, err := unix.Open(dst, dirFlags, 0)
	if err != nil {
		unix.Close(s)
		return nil, &os.PathError{Op: "open", Path: dst, Err: err}
	}
	p := &dirPair{src: s, dst: d}
	p.refs.Store(1)
	return p, nil
}

// readDirNames reads the names in the directory open as fd, sorted, "."
// and ".." left out.
func readDirNames(fd int) ([]string, error) {
	buf := make([]byte, 8<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			slices.Sort(names)
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// copyFile copies the regular file src (a name in the directory open as
// srcDir, or a path with unix.AT_FDCWD) to dst (the same, in dstDir), created with src's
// permission bits (the umask may clear some), through buf (calling tick,
// if not nil, after each full buffer: a file of gigabytes on slow storage
// is one job that takes minutes, not a hang), then calls
// meta with both descriptors and what dst is then, before closing them:
// the metadata is copied through the descriptors (copyMeta), so that only
// the two opens walk the paths, and only the changes left are made, each
// one an inode update on the data file system.
//
// It uses the descriptors directly rather than os.File: opening an
// os.File tries to add it to the runtime's poller (an epoll_ctl that fails
// for a regular file, and four fcntl calls around it), and its ReadFrom
// tries copy_file_range, which fails between two file systems; for the
// hundreds of small files of a /var that was two thirds of the system
// calls of the copy, each one slow under emulation.
func copyFile(srcDir int, src string, dstDir int, dst string, perm uint32, buf []byte, tick func(), meta func(in, out int, now *unix.Stat_t) error) (err error) {
	in, err := unix.Openat(srcDir, src, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: src, Err: err}
	}
	defer unix.Close(in)
	out, err := unix.Openat(dstDir, dst, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm&0o777)
	if err != nil {
		return &os.PathError{Op: "open", Path: dst, Err: err}
	}
	defer func() { // also when tick or meta panics: the copy fails, the descriptor is not kept
		if cerr := unix.Close(out); err == nil && cerr != nil {
			err = &os.PathError{Op: "close", Path: dst, Err: cerr}
		}
	}()
	if err = copyFD(out, in, buf, tick); err != nil {
		return err
	}
	var now unix.Stat_t
	if err = unix.Fstat(out, &now); err != nil {
		return err
	}
	return meta(in, out, &now)
}

// copyFD copies in to out until the end of in, calling tick (if not nil)
// after each full buffer written. A whole block of zeros (holeBlock bytes,
// counted from the start of each read: reads of whole buffers keep them at
// multiples of it in the file) is not written: out gets a hole there, as cp
// --sparse=always makes (SquashFS reads a sparse file's holes back as
// zeros, and says nothing of them to SEEK_HOLE). A sparse file in the
// image's /var (lastlog after a useradd of a high uid: 29 MB for uid
// 100000, 292 GB for uid 10^9) was written out in full, and one larger than
// the data partition failed the seed at every boot.
func copyFD(out, in int, buf []byte, tick func()) error {
	var size int64
	hole := false // out's offset was moved past a hole, not written up to
	for {
		n, err := unix.Read(in, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			break
		}
		for b := buf[:n]; len(b) > 0; {
			data, zeros := splitHole(b)
			if err := writeAll(out, data); err != nil {
				return err
			}
			if zeros > 0 {
				if _, err := unix.Seek(out, int64(zeros), io.SeekCurrent); err != nil {
					return fmt.Errorf("seek: %w", err)
				}
			}
			hole = zeros > 0 || hole && len(data) == 0
			b = b[len(data)+zeros:]
		}
		size += int64(n)
		if n == len(buf) && tick != nil {
			tick()
		}
	}
	if hole { // ends in a hole: the size is set, not written
		if err := unix.Ftruncate(out, size); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
	}
	return nil
}

// holeBlock is the smallest run of zeros copyFD leaves a hole for: the
// page size, and the block size of btrfs and ext4 as mkfs makes them.
const holeBlock = 4096

// splitHole splits b into the data up to its first whole block of zeros and
// the length of the zero blocks that follow; a short last block is data.
func splitHole(b []byte) (data []byte, zeros int) {
	i := 0
	for i+holeBlock <= len(b) && !allZero(b[i:i+holeBlock]) {
		i += holeBlock
	}
	if i+holeBlock > len(b) {
		return b, 0
	}
	j := i
	for j+holeBlock <= len(b) && allZero(b[j:j+holeBlock]) {
		j += holeBlock
	}
	return b[:i], j - i
}

var zeroBlock [holeBlock]byte

func allZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }

// writeAll writes b to out whole.
func writeAll(out int, b []byte) error {
	for len(b) > 0 {
		w, err := unix.Write(out, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		b = b[w:]
	}
	return nil
}

func copySymlink(src, dst string) error {
	target, err := os.Readlink(src)
	if err != nil {
		return err
	}
	return os.Symlink(target, dst)
}

// node is a file copyMeta reads or changes: through its descriptor when
// fd >= 0 (a regular file copyFile has open), else by path, never
// following a symlink.
type node struct {
	path string
	fd   int
}

func (n node) chown(uid, gid int) error {
	if n.fd >= 0 {
		return unix.Fchown(n.fd, uid, gid)
	}
	return unix.Lchown(n.path, uid, gid)
}

func (n node) chmod(mode uint32) error {
	if n.fd >= 0 {
		return unix.Fchmod(n.fd, mode)
	}
	return unix.Chmod(n.path, mode)
}

func (n node) setTimes(ts *[2]unix.Timespec) error {
	if n.fd >= 0 {
		// utimensat(fd, NULL, ts, 0): futimens.
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(n.fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, n.path, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

func (n node) listXattrs(b []byte) (int, error) {
	if n.fd >= 0 {
		return unix.Flistxattr(n.fd, b)
	}
	return unix.Llistxattr(n.path, b)
}

func (n node) getXattr(name string, b []byte) (int, error) {
	if n.fd >= 0 {
		return unix.Fgetxattr(n.fd, name, b)
	}
	return unix.Lgetxattr(n.path, name, b)
}

func (n node) setXattr(name string, val []byte) error {
	if n.fd >= 0 {
		return unix.Fsetxattr(n.fd, name, val, 0)
	}
	return unix.Lsetxattr(n.path, name, val, 0)
}

// copyMeta copies ownership, extended attributes, mode and times, in that
// order: chown clears setuid bits and security.capability, so both come
// after it; times come last because the other calls change ctime only but
// directory mtimes must not be touched after their entries are made.
//
// now, when known, is what dst is already (a file copyFile made, as root,
// with its permission bits): the owner and mode are then changed only if
// they differ, which for a /var of root-owned files saves two inode
// updates per file.
func copyMeta(src, dst node, st *unix.Stat_t, now *unix.Stat_t) error {
	if now == nil || now.Uid != st.Uid || now.Gid != st.Gid {
		if err := dst.chown(int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK && (now == nil || now.Mode&0o7777 != st.Mode&0o7777) {
		if err := dst.chmod(st.Mode & 0o7777); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	ts := [2]unix.Timespec{st.Atim, st.Mtim}
	if err := dst.setTimes(&ts); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// xattrNode is where copyXattrs reads and writes extended attributes (a
// node; fakes in tests).
type xattrNode interface {
	listXattrs(b []byte) (int, error)
	getXattr(name string, b []byte) (int, error)
	setXattr(name string, val []byte) error
}

// copyXattrs copies extended attributes. A filesystem without xattr
// support on either side is not an error: the attributes are optional, and
// one whose name the destination does not support (ENOTSUP: a namespace it
// lacks) is left out, the others still copied.
func copyXattrs(src, dst xattrNode) error {
	buf, err := xattrBuf(src.listXattrs)
	if errors.Is(err, unix.ENOTSUP) || err == nil && len(buf) == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing xattrs: %w", err)
	}
	// The list is NUL-terminated names.
	for _, name := range strings.FieldsFunc(string(buf), func(r rune) bool { return r == 0 }) {
		val, err := xattrBuf(func(b []byte) (int, error) { return src.getXattr(name, b) })
		if err != nil {
			return fmt.Errorf("reading xattr %s: %w", name, err)
		}
		err = dst.setXattr(name, val)
		if errors.Is(err, unix.ENOTSUP) {
			continue // it used to end the copy: every later name was lost
		}
		if err != nil {
			return fmt.Errorf("setting xattr %s: %w", name, err)
		}
	}
	return nil
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
