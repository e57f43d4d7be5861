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
// symlink to /lib/systemd/systemd) inside newRoot, treating absolute symlink
// targets as relative to newRoot, and checks it is an executable file. It
// returns the resolved path inside newRoot's namespace.
func ResolveInit(newRoot, init string) (string, error) {
	if !strings.HasPrefix(init, "/") {
		return "", fmt.Errorf("init=%s: expected an absolute path", init)
	}
	p := path.Clean(init)
	for hops := 0; hops < 40; hops++ {
		full := filepath.Join(newRoot, p)
		fi, err := os.Lstat(full)
		if err != nil {
			return "", fmt.Errorf("init %s not found in the new root: %w", p, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(full)
			if err != nil {
				return "", fmt.Errorf("init %s: %w", p, err)
			}
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(p), target)
			}
			p = path.Clean(target)
			continue
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("init %s in the new root is not an executable file (mode %v)", p, fi.Mode())
		}
		return p, nil
	}
	return "", fmt.Errorf("init %s: too many levels of symbolic links", init)
}

// MoveAPIFilesystems moves /dev, /proc, /sys and /run under newRoot.
func MoveAPIFilesystems(s *Stack, newRoot string) error {
	for _, fs := range APIFilesystems {
		if err := s.Do(Mount{Source: fs, Target: filepath.Join(newRoot, fs), Flags: unix.MS_MOVE}); err != nil {
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
