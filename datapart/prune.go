// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// PruneUppers removes the upper directories of images that are no longer
// in their slot: for each slot in keep (slot name → image id now in it) it
// removes @overlay/SLOT/ID for every other image id, and returns the paths
// removed.
//
// It removes nothing else, ever: slots not in keep (say, one whose header
// could not be read) are left whole; entries that are not directories,
// symlinks, and directories whose names are not encoded image ids are left
// alone, and so are directories that hold anything but what keel puts in
// an upper (upperLayout); and every removal goes through an os.Root at @overlay, so no
// symlink can lead it outside. Errors do not stop it: it prunes what it can
// and returns them joined.
func PruneUppers(dataRoot string, keep map[string]string) (removed []string, err error) {
	dir := filepath.Join(dataRoot, Overlay)
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pruning uppers: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("pruning uppers: %s is a %s, expected a directory; nothing pruned", dir, Kind(fi.Mode()))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("pruning uppers: %w", err)
	}
	defer root.Close()
	var errs []error
	for _, slot := range slices.Sorted(maps.Keys(keep)) {
		r, err := pruneSlot(root, slot, keep[slot])
		for _, name := range r {
			removed = append(removed, filepath.Join(dir, name))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// pruneSlot removes the uppers in root/slot other than the one of imageID,
// and those set aside there (SetAsideUppers) for other images, and returns
// their paths relative to root.
func pruneSlot(root *os.Root, slot, imageID string) (removed []string, err error) {
	if err := checkSlot(slot); err != nil {
		return nil, fmt.Errorf("pruning uppers: %w", err)
	}
	keepName, err := EncodeImageID(imageID)
	if err != nil {
		return nil, fmt.Errorf("pruning uppers of slot %s: %w", slot, err)
	}
	if fi, err := root.Lstat(slot); err == nil && !fi.IsDir() {
		return nil, nil // not a directory itself: a symlink is never followed
	}
	removed, err = pruneDir(root, slot, keepName)
	r, err2 := pruneDir(root, filepath.Join(slot, SetAside), keepName)
	return append(removed, r...), errors.Join(err, err2)
}

// trashPrefix starts the name an upper is renamed to before it is removed
// (pruneDir): a leading dot is never an encoded image id, so a removal
// that stops part-way (an error, a power cut) leaves no half upper that a
// later boot of that image id would take for its own, unmerged. The next
// prune removes what is left.
const trashPrefix = ".keel-trash-"

// pruneDir removes the uppers in root/dir other than keepName, and what an
// earlier prune left in its trash there.
func pruneDir(root *os.Root, dir, keepName string) (removed []string, err error) {
	errs := []error{emptyTrash(root, dir)}
	rels, err := uppersIn(root, dir, keepName)
	if err != nil {
		return nil, errors.Join(append(errs, fmt.Errorf("pruning uppers in %s: %w", filepath.Join(root.Name(), dir), err))...)
	}
	for _, rel := range rels {
		trash := filepath.Join(dir, trashPrefix+filepath.Base(rel))
		if err := root.Rename(rel, trash); err != nil {
			errs = append(errs, fmt.Errorf("pruning upper %s: %w", filepath.Join(root.Name(), rel), err))
			continue
		}
		removed = append(removed, rel)
		if err := removeTree(root, trash); err != nil {
			errs = append(errs, fmt.Errorf("pruning upper %s (renamed %s, removed at the next prune): %w", filepath.Join(root.Name(), rel), trashPrefix+filepath.Base(rel), err))
		}
	}
	return removed, errors.Join(errs...)
}

// emptyTrash removes what an earlier prune left in root/dir's trash.
func emptyTrash(root *os.Root, dir string) error {
	entries, err := fs.ReadDir(root.FS(), dir)
	if err != nil {
		return nil // no such directory: no trash; uppersIn says the rest
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), trashPrefix) {
			if err := removeTree(root, filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("emptying the prune's trash %s: %w", filepath.Join(root.Name(), dir, e.Name()), err))
			}
		}
	}
	return errors.Join(errs...)
}

// uppersIn lists, relative to root, the uppers in root/dir other than the
// one named keepName ("" for none): directories named by an encoded image
// id (isStaleUpper) laid out as keel's uppers (upperLayout). dir must be a
// directory itself, not a symlink to one; absent, it holds none.
func uppersIn(root *os.Root, dir, keepName string) ([]string, error) {
	if fi, err := root.Lstat(dir); errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || (err == nil && !fi.IsDir()) {
		return nil, nil
	}
	entries, err := fs.ReadDir(root.FS(), dir)
	if err != nil {
		return nil, err
	}
	var rels []string
	for _, e := range entries {
		rel := filepath.Join(dir, e.Name())
		if isStaleUpper(e, keepName) && upperLayout(root, rel) {
			rels = append(rels, rel)
		}
	}
	return rels, nil
}

// isStaleUpper reports whether e is an upper directory of an image other
// than the one named keepName.
func isStaleUpper(e fs.DirEntry, keepName string) bool {
	if e.Name() == keepName || !e.IsDir() { // IsDir is false for symlinks
		return false
	}
	_, err := DecodeImageID(e.Name())
	return err == nil
}

// upperLayout reports whether the directory rel holds what keel makes of
// an upper and nothing else: upper/ or work/ (both, after NewUpper), and
// possibly its etc-merge record. A directory a user made under a name that
// is also an image id (@overlay/a/backup) holds other things, and is left
// alone; an unreadable one too.
func upperLayout(root *os.Root, rel string) bool {
	entries, err := fs.ReadDir(root.FS(), rel)
	if err != nil {
		return false
	}
	found := false
	for _, e := range entries {
		switch e.Name() {
		case "upper", "work":
			found = found || e.IsDir()
		case EtcMergeFile:
		default:
			return false
		}
	}
	return found
}

// removeTree removes rel under root: one pass by descriptor (removeAll),
// linear in the tree, with two descriptors at most whatever its depth.
// overlayfs leaves work/work with mode 000, which is no obstacle to the
// init (root, with CAP_DAC_OVERRIDE); without that capability (tests run
// as a user) the removal fails with EACCES, and then every directory is
// made accessible first (chmodTree) and the removal runs again. An EPERM
// is an immutable or append-only file or directory: their flags are
// cleared (clearFlagsTree) and the removal runs again. rel itself is
// looked at with Lstat: a symlink (or any other non-directory) is removed
// as it is, never followed.
//
// The walk of chmodTree resolves each path from root, quadratic in the
// tree's depth: the init used to run it first on every upper it pruned, so
// 8,000 nested directories a user made in /tmp (on the persistent root)
// held a later update's boot for minutes. It runs only after a removal
// failed with EACCES.
func removeTree(root *os.Root, rel string) error {
	fi, err := root.Lstat(rel)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return root.Remove(rel)
	}
	err = removeAll(root, rel)
	if errors.Is(err, unix.EACCES) {
		if err := chmodTree(root, rel); err != nil {
			return err
		}
		err = removeAll(root, rel)
	}
	if errors.Is(err, unix.EPERM) {
		if cerr := clearFlagsTree(root, rel); cerr != nil {
			return errors.Join(err, cerr)
		}
		err = removeAll(root, rel)
	}
	return err
}

// The inode flags that forbid an unlink (chattr +i, +a): FS_IMMUTABLE_FL and
// FS_APPEND_FL of linux/fs.h.
const (
	fsImmutableFL = 0x10
	fsAppendFL    = 0x20
)

// clearFlagsTree clears the immutable and append-only flags of every
// directory and regular file of rel, a tree keel is removing: an upper
// pruned, a leftover of an interrupted new upper, the parts of a snapshot
// the /etc merge cuts away. A user's `chattr +i /root/.ssh/authorized_keys`
// in the running system is copied up with its flag, and its EPERM would
// otherwise stop every later removal: a trash never emptied, a merge that
// fails at every boot. PID 1 holds CAP_LINUX_IMMUTABLE. Only the tree's own
// inodes change: a snapshot's are its own, and a file with more than one
// link (a hard link from @var, possible on ext4) keeps its flags, so its
// removal still fails, named. Other files are not opened (a device node's
// open can act on the device). A variable for tests.
var clearFlagsTree = func(root *os.Root, rel string) error {
	return fs.WalkDir(root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		return clearFlags(root, p)
	})
}

// clearFlags clears the immutable and append-only flags of the directory
// or regular file p; a file system without inode flags has none to clear.
func clearFlags(root *os.Root, p string) error {
	f, err := root.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !(fi.IsDir() || fi.Mode().IsRegular()) {
		return err // replaced since the walk read it: not ours to open
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !fi.IsDir() && st.Nlink > 1 {
		return nil // linked from outside the tree too (@var on ext4): its flags are not ours to clear
	}
	fd := int(f.Fd())
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	if err != nil || flags&(fsImmutableFL|fsAppendFL) == 0 {
		return err
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags&^(fsImmutableFL|fsAppendFL))); err != nil {
		return &fs.PathError{Op: "clear the immutable and append-only flags of", Path: p, Err: err}
	}
	return nil
}

// chmodTree makes every directory of rel accessible to its owner
// (fs.WalkDir visits a directory before reading it and does not follow
// symlinks below its root); a variable for tests.
var chmodTree = func(root *os.Root, rel string) error {
	return fs.WalkDir(root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return root.Chmod(p, 0o700)
		}
		return nil
	})
}
