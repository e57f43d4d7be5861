// SPDX-License-Identifier: Apache-2.0

package mounts

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// APIFilesystems are moved from the initramfs into the new root.
var APIFilesystems = []string{"/dev", "/proc", "/sys", "/run"}

// ResolveInit follows init (an absolute path such as /sbin/init, often a
// symlink to /lib/systemd/systemd) inside newRoot as the kernel will once
// newRoot is /: one component at a time, every symlink on the way (not
// only the last) read in newRoot, an absolute target restarting at
// newRoot, and ".." stopping there (openat2's RESOLVE_IN_ROOT). It checks
// the end is an executable file and returns its path inside newRoot's
// namespace. Resolving the directories from the initramfs instead would
// take /sbin -> / (an upper's symlink) for the initramfs's /init, and miss
// /lib/systemd/systemd behind an image's absolute /lib -> /usr/lib.
func ResolveInit(newRoot, init string) (string, error) {
	if !strings.HasPrefix(init, "/") {
		return "", fmt.Errorf("init=%s: expected an absolute path", init)
	}
	cur, err := resolveIn(newRoot, init, "init "+init, nil, false)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(filepath.Join(newRoot, cur))
	if err != nil {
		return "", fmt.Errorf("init %s: %w", init, inRoot(err, newRoot, cur))
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("init %s (%s) in the new root is not an executable file (mode %v)", init, cur, fi.Mode())
	}
	return cur, nil
}

// ResolveMountPoint is where a mount on rel (an absolute path such as
// /home) in newRoot lands once newRoot is /: rel followed inside newRoot as
// ResolveInit follows the init, through the symlinks the image at lower has
// at the same place with the same target (OSTree's /home -> var/home) and
// no other, to a directory, or to nothing in a directory (the mount makes
// it, as Stack.Do always made a missing target). A mount on newRoot/rel
// itself would follow
// every symlink on the way from the initramfs's root: an absolute link of
// the image's went to the initramfs, and a link the data partition put
// behind the image's (@var's home -> ../sbin) chose where @home was
// mounted, over the image's own code. It returns the path inside newRoot.
func ResolveMountPoint(newRoot, lower, rel string) (string, error) {
	what := "the mount point " + rel
	if !strings.HasPrefix(rel, "/") {
		return "", fmt.Errorf("%s: expected an absolute path", what)
	}
	cur, err := resolveIn(newRoot, rel, what, func(next string) error {
		if sameLink(filepath.Join(newRoot, next), filepath.Join(lower, next)) {
			return nil
		}
		return fmt.Errorf("%s: %s in the new root is a symlink the image does not have there, expected a directory", what, next)
	}, true)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(filepath.Join(newRoot, cur))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return cur, nil // its parent is a directory: the mount makes it there
	case err != nil:
		return "", fmt.Errorf("%s: %w", what, inRoot(err, newRoot, cur))
	case !fi.IsDir():
		return "", fmt.Errorf("%s (%s) in the new root is a %s, expected a directory", what, cur, Kind(fi.Mode()))
	}
	return cur, nil
}

// resolveIn follows p (absolute) inside newRoot as the kernel will once
// newRoot is /: one component at a time, every symlink on the way (not
// only the last) read in newRoot, an absolute target restarting at
// newRoot, and ".." stopping there (openat2's RESOLVE_IN_ROOT). follow,
// when set, is asked before each symlink (its path inside newRoot) is
// followed, and its error ends the lookup. It returns the path reached
// inside newRoot; with missingLast, its last component need not exist
// (then neither does what it returns); what names p in errors.
func resolveIn(newRoot, p, what string, follow func(next string) error, missingLast bool) (string, error) {
	rest := strings.Split(p, "/")
	cur, links := "/", 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		fi, err := os.Lstat(filepath.Join(newRoot, next))
		if missingLast && errors.Is(err, os.ErrNotExist) && onlyDots(rest) {
			return next, nil
		}
		if err != nil {
			return "", fmt.Errorf("%s not found in the new root: %w", what, inRoot(err, newRoot, next))
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			if links++; links > maxLinks {
				return "", fmt.Errorf("%s: too many levels of symbolic links", what)
			}
			if follow != nil {
				if err := follow(next); err != nil {
					return "", err
				}
			}
			target, err := os.Readlink(filepath.Join(newRoot, next))
			if err != nil {
				return "", fmt.Errorf("%s: %w", what, inRoot(err, newRoot, next))
			}
			if strings.HasPrefix(target, "/") {
				cur = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
		case len(rest) > 0 && !fi.IsDir():
			return "", fmt.Errorf("%s: %s in the new root is a %s, expected a directory", what, next, Kind(fi.Mode()))
		default:
			cur = next
		}
	}
	return cur, nil
}

// onlyDots reports whether the components left name no further entry.
func onlyDots(rest []string) bool {
	for _, c := range rest {
		if c != "" && c != "." {
			return false
		}
	}
	return true
}

// maxLinks is how many symlinks a lookup follows, as the kernel's (40).
const maxLinks = 40

// inRoot names a path error's file as newRoot's own, not the initramfs's.
func inRoot(err error, newRoot, p string) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return &os.PathError{Op: pe.Op, Path: p, Err: pe.Err}
	}
	return err
}

// CheckMountPoints checks that each of rels (absolute paths of one
// component, such as /dev) in newRoot is a directory or absent, never a
// symlink or a file, unless the image at lower has the same there: a mount
// there would follow a symlink from the initramfs's root, not newRoot's,
// and move /dev or bind /var to a place the upper layer chose. The image's
// own links (/home -> var/home, as OSTree lays it out) are the image's to
// choose, signed with it, and stay as they worked before.
func CheckMountPoints(newRoot, lower string, rels ...string) error {
	for _, rel := range rels {
		fi, err := os.Lstat(filepath.Join(newRoot, rel))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("the mount point %s in the new root: %w", rel, inRoot(err, newRoot, rel))
		case !fi.IsDir() && !sameLink(filepath.Join(newRoot, rel), filepath.Join(lower, rel)):
			return fmt.Errorf("the mount point %s in the new root is a %s, expected a directory", rel, Kind(fi.Mode()))
		}
	}
	return nil
}

// sameLink reports whether a and b are both symlinks to the same target.
func sameLink(a, b string) bool {
	ta, err := os.Readlink(a)
	if err != nil {
		return false
	}
	tb, err := os.Readlink(b)
	return err == nil && ta == tb
}

// Kind names a file type for messages.
func Kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&os.ModeSymlink != 0:
		return "symlink"
	case m&os.ModeNamedPipe != 0:
		return "fifo"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	}
	return "special file"
}

// ResolveAPIFilesystems is where MoveAPIFilesystems moves each of /dev,
// /proc, /sys and /run in newRoot, paths inside newRoot: the mount point
// as ResolveMountPoint finds it (through the image's own links only: an
// image's /run -> var/run leads into @var, whose run the data partition
// could make a link to ../sbin); one newRoot does not have is made there
// by the move.
func ResolveAPIFilesystems(newRoot, lower string) (map[string]string, error) {
	at := map[string]string{}
	for _, fs := range APIFilesystems {
		p, err := ResolveMountPoint(newRoot, lower, fs)
		if err != nil {
			return nil, err
		}
		at[fs] = p
	}
	return at, nil
}

// MoveAPIFilesystems moves /dev, /proc, /sys and /run under newRoot, each
// to its place in at (ResolveAPIFilesystems; the plain path when at has
// none).
func MoveAPIFilesystems(s *Stack, newRoot string, at map[string]string) error {
	for _, fs := range APIFilesystems {
		p, ok := at[fs]
		if !ok {
			p = fs
		}
		if err := s.Do(Mount{Source: fs, Target: filepath.Join(newRoot, p), Flags: unix.MS_MOVE}); err != nil {
			return err
		}
	}
	return nil
}

// SwitchRoot makes newRoot the root and executes init in it with argv and an
// empty environment (the kernel passes unknown command-line options such as
// slot=B to PID 1 as environment variables; they must not leak into systemd).
// The API filesystems must have been moved already. The initramfs is freed
// first; only an exec failure returns.
func SwitchRoot(newRoot, init string, argv []string) error {
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch_root: chdir %s: %w", newRoot, err)
	}
	if err := FreeInitramfs("/", newRoot); err != nil {
		// Not fatal: the memory is lost, the boot goes on.
		fmt.Fprintf(os.Stderr, "keel: switch_root: freeing the initramfs: %v\n", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch_root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch_root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch_root: chdir /: %w", err)
	}
	if err := unix.Exec(init, argv, []string{}); err != nil {
		return fmt.Errorf("switch_root: exec %s: %w", init, err)
	}
	return nil
}

// FreeInitramfs deletes everything on the filesystem of root (the initramfs)
// except the directory keep, without crossing into other mounts.
func FreeInitramfs(root, keep string) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return err
	}
	return removeSameDev(root, keep, st.Dev)
}

func removeSameDev(dir, keep string, dev uint64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if p == keep {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil || st.Dev != dev {
			continue // a mount point, or gone
		}
		if e.IsDir() {
			if err := removeSameDev(p, keep, dev); err != nil {
				errs = append(errs, err)
			}
		}
		if err := os.Remove(p); err != nil && !e.IsDir() {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
