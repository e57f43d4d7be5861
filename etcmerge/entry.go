// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind is what a path is in one tree.
type Kind int

// Kinds of entries. Whiteout is overlayfs' character device 0:0 (a
// deletion); Other is a device node, fifo or socket, which is never carried.
const (
	Absent Kind = iota
	File
	Dir
	Symlink
	Whiteout
	Other
)

func (k Kind) String() string {
	return [...]string{"absent", "file", "directory", "symlink", "whiteout", "special file"}[k]
}

// entry is one path of one tree, read with lstat.
type entry struct {
	path string
	kind Kind
	st   unix.Stat_t
	// xa are all the extended attributes (overlay ones included) when
	// xaRead: lookupLocal reads them once for what the merge asks of a
	// local entry (opaque, metacopy) and what it copies.
	xa     map[string][]byte
	xaRead bool
}

// lookupLocal is lookup with the extended attributes read.
func lookupLocal(path string) (entry, error) {
	e, err := lookup(path)
	if err != nil || e.kind == Absent {
		return e, err
	}
	e.xa, err = allXattrs(path)
	e.xaRead = err == nil
	return e, err
}

// xattr reads one extended attribute (nil, false when it is not set).
func (e entry) xattr(name string) ([]byte, bool) {
	if e.xaRead {
		v, ok := e.xa[name]
		return v, ok
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(e.path, name, buf)
	if errors.Is(err, unix.ERANGE) {
		return []byte("long"), true // longer than any value asked about
	}
	return buf[:max(n, 0)], err == nil
}

// lookup reads path; a missing path (or one under a non-directory) is Absent.
func lookup(path string) (entry, error) {
	return lookupWith(path, "lstat", unix.Lstat)
}

// lookupRoot is lookup following a symlink: the root of a tree, as the
// caller names it.
func lookupRoot(path string) (entry, error) {
	return lookupWith(path, "stat", unix.Stat)
}

func lookupWith(path, op string, stat func(string, *unix.Stat_t) error) (entry, error) {
	e := entry{path: path}
	if path == "" {
		return e, nil
	}
	err := stat(path, &e.st)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return e, nil
	}
	if err != nil {
		return e, &fs.PathError{Op: op, Path: path, Err: err}
	}
	switch e.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.kind = File
	case unix.S_IFDIR:
		e.kind = Dir
	case unix.S_IFLNK:
		e.kind = Symlink
	case unix.S_IFCHR:
		e.kind = Other
		if unix.Major(uint64(e.st.Rdev)) == 0 && unix.Minor(uint64(e.st.Rdev)) == 0 {
			e.kind = Whiteout
		}
	default:
		e.kind = Other
	}
	return e, nil
}

func (e entry) mode() uint32 { return e.st.Mode & 0o7777 }

// sameMeta compares what the merge treats as an entry's metadata: type,
// permission bits, ownership and the extended attributes it carries (not
// times: a copy-up keeps them, an edit changes them, and the content
// comparison says which). The attributes are listed only when the rest
// is the same, and only for an entry that lookupLocal did not read.
func (e entry) sameMeta(o entry) (bool, error) {
	if !e.sameModeOwner(o) {
		return false, nil
	}
	a, err := e.attrs()
	if err != nil {
		return false, err
	}
	b, err := o.attrs()
	return sameAttrs(a, b), err
}

// sameModeOwner compares type, permission bits and ownership.
func (e entry) sameModeOwner(o entry) bool {
	return e.kind == o.kind && e.mode() == o.mode() && e.st.Uid == o.st.Uid && e.st.Gid == o.st.Gid
}

// withoutDerived is e with its attributes read and derivedAttr's left
// out: what is carried over content that is not the file's own.
func (e entry) withoutDerived() (entry, error) {
	xa, err := e.attrs()
	if err != nil {
		return e, err
	}
	e.xa, e.xaRead = make(map[string][]byte, len(xa)), true
	for name, v := range xa {
		if !derivedAttr(name) {
			e.xa[name] = v
		}
	}
	return e, nil
}

// attrs are all of e's extended attributes.
func (e entry) attrs() (map[string][]byte, error) {
	if e.xaRead || e.kind == Absent {
		return e.xa, nil
	}
	return allXattrs(e.path)
}

// sameAttrs compares the attributes of two entries that say something of
// the machine's configuration (comparedAttr): a change to one of them is
// a local change, a difference in any other is not, since a copy-up may
// add, drop or rewrite those with nothing changed.
func sameAttrs(a, b map[string][]byte) bool {
	n := 0
	for name, v := range a {
		if !comparedAttr(name) {
			continue
		}
		w, ok := b[name]
		if !ok || !sameAttrValue(name, v, w) {
			return false
		}
		n++
	}
	for name := range b {
		if comparedAttr(name) {
			n--
		}
	}
	return n == 0
}

// comparedAttr names the attributes an administrator sets: POSIX ACLs
// (setfacl), file capabilities (setcap), security labels (chcon, SMACK,
// AppArmor), and the user and trusted namespaces but for overlayfs' own,
// trusted.overlay.* (they describe the layering; an opaque directory is a
// rule of its own). keel mounts overlayfs without userxattr: a
// user.overlay.* attribute is an ordinary user attribute.
// Not compared: what a file system or the kernel adds by itself, such as
// btrfs' inherited properties (btrfs.compression, set on an upper's
// directory, is on every copy-up under it) and the integrity attributes
// derived from the content (security.ima, security.evm): a copy-up with
// nothing changed would otherwise be carried, its mode and owner winning
// over an update that changes them.
func comparedAttr(name string) bool {
	switch {
	case strings.HasPrefix(name, overlayXattr):
		return false
	case strings.HasPrefix(name, "system.posix_acl_"), strings.HasPrefix(name, "user."), strings.HasPrefix(name, "trusted."):
		return true
	}
	switch name {
	case "security.capability", "security.selinux", "security.apparmor", "security.SMACK64", "security.SMACK64EXEC",
		"security.SMACK64MMAP", "security.SMACK64TRANSMUTE":
		return true
	}
	return false
}

// sameAttrValue compares two values of the attribute name; a security
// label is the same with or without its terminating NUL (SELinux writes
// it, tools may not).
func sameAttrValue(name string, v, w []byte) bool {
	if strings.HasPrefix(name, "security.") {
		v, w = bytes.TrimSuffix(v, []byte{0}), bytes.TrimSuffix(w, []byte{0})
	}
	return bytes.Equal(v, w)
}

// derivedAttr names the integrity attributes the kernel derives from a
// file's content: not written with content other than the file's own.
func derivedAttr(name string) bool { return name == "security.ima" || name == "security.evm" }

// sameData compares content: a file's bytes, a symlink's target.
func (e entry) sameData(o entry) (bool, error) {
	if e.kind != o.kind {
		return false, nil
	}
	switch e.kind {
	case File:
		if e.st.Size != o.st.Size {
			return false, nil
		}
		if e.st.Size > maxContent {
			return sameStream(e.path, o.path)
		}
		a, err := e.content()
		if err != nil {
			return false, err
		}
		b, err := o.content()
		if err != nil {
			return false, err
		}
		return bytes.Equal(a, b), nil
	case Symlink:
		a, err := os.Readlink(e.path)
		if err != nil {
			return false, err
		}
		b, err := os.Readlink(o.path)
		return a == b, err
	}
	return true, nil
}

// maxContent is the largest file the merge reads whole: an account
// database it merges, or content it must take from an image (a
// metadata-only copy-up's data, a metadata-only local change). A larger
// one fails the merge naming it, never an allocation of its size: PID 1
// cannot survive running out of memory (Go's is a fatal error, not a
// panic), and a sparse or corrupt 64 GiB /etc/shadow would otherwise kill
// it at every update. A failed merge is retried at the next boot, the
// machine's /etc kept where it is (docs/data.md). Larger files are
// compared in streamBlock reads and carried by copyData, sparse files
// kept sparse (a database under /etc is no rarity: Pi-hole's).
const maxContent = 64 << 20

// errTooLarge is content's error for a file over maxContent.
var errTooLarge = fmt.Errorf("larger than the %d MiB a file of /etc is read whole for the merge", maxContent>>20)

// content reads a file's bytes with a buffer the size lstat gave and one
// more byte, through the system calls themselves (no poller, no fstat): a
// read that does not fill the buffer is the end of a regular file, so a
// file of the size lstat gave takes one read (a file that grew since is
// read whole all the same, up to maxContent).
func (e entry) content() ([]byte, error) {
	if e.st.Size > maxContent {
		return nil, &fs.PathError{Op: "read", Path: e.path, Err: errTooLarge}
	}
	fd, err := unix.Open(e.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: e.path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, max(e.st.Size, 0)+1)
	for {
		if len(buf) > maxContent {
			return nil, &fs.PathError{Op: "read", Path: e.path, Err: errTooLarge}
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		want := cap(buf) - len(buf)
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: e.path, Err: err}
		}
		buf = buf[:len(buf)+n]
		if n < want {
			return buf, nil
		}
	}
}

// overlayXattr is the prefix of overlayfs' own attributes: keel mounts
// its overlays without userxattr, so the kernel reads only the trusted
// namespace, and a user.overlay.* attribute marks nothing.
const overlayXattr = "trusted.overlay."

// opaque reports whether a directory of an overlay upper hides the lower
// directory (trusted.overlay.opaque).
func (e entry) opaque() bool {
	if e.kind != Dir {
		return false
	}
	v, ok := e.xattr(opaqueXattr)
	return ok && string(v) == "y"
}

// metacopy reports a metadata-only copy-up made with metacopy=on: the upper
// file has no data, the lower one holds it.
func (e entry) metacopy() bool {
	if e.kind != File {
		return false
	}
	_, ok := e.xattr(overlayXattr + "metacopy")
	return ok
}

// dropXattr names the overlayfs attributes that point into the old lower
// layer (file handles, redirects, link counts) and must not follow a file
// into an upper over another image. opaque is kept: it is the local change.
func dropXattr(name string) bool {
	rest, ok := strings.CutPrefix(name, overlayXattr)
	return ok && rest != "opaque"
}

// xattrs are the attributes carried with e: all but those dropXattr names.
func (e entry) xattrs() (map[string][]byte, error) {
	if !e.xaRead {
		return xattrs(e.path)
	}
	out := make(map[string][]byte, len(e.xa))
	for name, v := range e.xa {
		if !dropXattr(name) {
			out[name] = v
		}
	}
	return out, nil
}

// xattrs reads the extended attributes of path without following a
// symlink, without those dropXattr names.
func xattrs(path string) (map[string][]byte, error) {
	xs, err := allXattrs(path)
	for name := range xs {
		if dropXattr(name) {
			delete(xs, name)
		}
	}
	return xs, err
}

// allXattrs reads every extended attribute of path without following a
// symlink (nil when there are none or the file system keeps none).
func allXattrs(path string) (map[string][]byte, error) {
	size, err := unix.Llistxattr(path, nil)
	if errors.Is(err, unix.ENOTSUP) || size == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", path, err)
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(path, buf); err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", path, err)
	}
	out := map[string][]byte{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, fmt.Errorf("xattr %s of %s: %w", name, path, err)
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(path, name, v); err != nil {
			return nil, fmt.Errorf("xattr %s of %s: %w", name, path, err)
		}
		out[name] = v[:n]
	}
	return out, nil
}

// streamBlock is the read size of sameStream and copyData.
const streamBlock = 1 << 20

// sameStream compares the bytes of the regular files a and b, of the same
// size, in streamBlock reads.
func sameStream(a, b string) (bool, error) {
	fa, err := openRegular(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := openRegular(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, streamBlock), make([]byte, streamBlock)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			return endOfBoth(ea, eb)
		}
	}
}

// endOfBoth is sameStream's verdict once a read of either file stopped
// short: equal when both ended, a read error otherwise.
func endOfBoth(ea, eb error) (bool, error) {
	for _, err := range []error{ea, eb} {
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return false, err
		}
	}
	return (ea != nil) == (eb != nil), nil
}

// openRegular opens path for reading, never through a symlink.
func openRegular(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
}
