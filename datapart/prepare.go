// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Plan is what Prepare needs to know about the boot.
type Plan struct {
	Root     string // where the data filesystem is mounted (DefaultRoot)
	FSType   string // Btrfs or Ext4
	ImageVar string // the image's /var, in the read-only lower mount
	// Slot and ImageID name the upper of the image being booted; Keep maps
	// every slot whose image id is known to that id. A slot missing from
	// Keep has its uppers left alone. With Slot and ImageID both empty (a
	// root without an image id) there is no upper and nothing is pruned.
	Slot, ImageID string
	Keep          map[string]string
	// NoPrune keeps every upper: the init sets it when it cannot prove
	// which image is in Slot (its devices were overridden or ambiguous).
	NoPrune bool
	Sys     Sys // nil fields are the kernel
	// Progress, when set, is called as seeding /var copies each file and
	// directory (from several goroutines): the init renews its watchdog
	// lease, so that the first boot of an image with a large /var on slow
	// storage is not reset as a hang, over and over.
	Progress func()
}

// Result is what Prepare did, for the log and the boot report.
type Result struct {
	Created  []string // subvolumes or directories made
	Seeded   bool     // @var was seeded from the image's /var
	Pruned   []string // upper directories removed
	UpperDir string   // holds upper/ and work/ for overlay=persistent
	// FreshUpper is true when UpperDir did not exist yet: the first boot of
	// this image in this slot, so the root starts as the image is.
	FreshUpper bool
	Warnings   []string // problems that do not stop the boot (pruning)
}

// Prepare readies the mounted data filesystem for the boot: the layout,
// the seeding of @var, the pruning of stale uppers, and the name of this
// image's upper. An error means the partition cannot be used as it is and
// the init should boot volatile (see VolatileWarning); a failed prune is
// only a warning, since keeping an old upper harms nothing but space.
func Prepare(p Plan) (Result, error) {
	var r Result
	var err error
	withUpper := p.Slot != "" || p.ImageID != ""
	if withUpper {
		if r.UpperDir, err = UpperDir(p.Root, p.Slot, p.ImageID); err != nil {
			return r, err
		}
		if err = CheckUpperPath(p.Root, r.UpperDir); err != nil {
			return r, err
		}
	}
	if r.Created, err = EnsureLayout(p.Root, p.FSType, p.Sys); err != nil {
		return r, err
	}
	if r.Seeded, err = SeedVar(p.ImageVar, filepath.Join(p.Root, Var), p.Progress); err != nil {
		return r, err
	}
	if withUpper {
		r.prune(p)
	}
	if w := spaceWarning(p.Root, p.Sys.withDefaults()); w != "" {
		r.Warnings = append(r.Warnings, w)
	}
	return r, nil
}

// CheckUpperPath checks that every directory from dataRoot down to the
// upper dir (@overlay, the slot's, the image's) and its upper/, upper/etc
// and work/ is a directory or absent, never a symlink or another file: the
// overlay mount and the /etc merge go by path, and a symlink the running
// system planted there would have the upper, or the merge's reads, land
// where it points from the initramfs's root (found by a hunting helper).
func CheckUpperPath(dataRoot, dir string) error {
	rel, err := filepath.Rel(dataRoot, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("upper %s: expected a directory under the data partition %s", dir, dataRoot)
	}
	check := func(p string) (bool, error) {
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		case err != nil:
			return false, err
		case !fi.IsDir():
			return false, fmt.Errorf("%s is a %s, expected a directory: the upper layer is not used", p, Kind(fi.Mode()))
		}
		return true, nil
	}
	p := dataRoot
	for _, c := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, c)
		if ok, err := check(p); !ok || err != nil {
			return err
		}
	}
	for _, sub := range []string{"work", "upper", "upper/etc"} {
		if _, err := check(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	return nil
}

// prune removes stale uppers; the image being booted is kept whatever
// p.Keep says.
func (r *Result) prune(p Plan) {
	keep := maps.Clone(p.Keep)
	if keep == nil {
		keep = map[string]string{}
	}
	keep[p.Slot] = p.ImageID
	var err error
	if p.NoPrune {
		keep = nil
	}
	if r.Pruned, err = PruneUppers(p.Root, keep); err != nil {
		r.Warnings = append(r.Warnings, err.Error())
	}
	if _, err := os.Lstat(r.UpperDir); errors.Is(err, fs.ErrNotExist) {
		r.FreshUpper = true
	}
}

// LowSpace is the free space below which Prepare warns: the boot goes on
// (a full /var is systemd's to report), but the report says why it may fail.
const LowSpace = 64 << 20

func spaceWarning(root string, sys Sys) string {
	var st unix.Statfs_t
	if err := sys.Statfs(root, &st); err != nil {
		return fmt.Sprintf("data partition at %s: statfs: %v", root, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < LowSpace {
		return fmt.Sprintf("data partition at %s is nearly full: %d MiB free of %d MiB", root, free>>20, (st.Blocks*uint64(st.Bsize))>>20)
	}
	return ""
}

// VolatileWarning is the line the init prints on the console and records
// in boot.json when the data partition dev cannot be used because of err
// and it boots with a tmpfs upper and the image's /var and /home instead.
// A filesystem that found its own metadata corrupt (a bad checksum,
// EBADMSG; an inconsistency, EUCLEAN) is said to be so, with what checks it.
func VolatileWarning(dev string, err error) string {
	msg := fmt.Sprintf("DATA PARTITION %s NOT USED, BOOTING VOLATILE: changes to /, /var and /home will be lost at shutdown; the partition is left as it is: %v", dev, err)
	if errors.Is(err, unix.EBADMSG) || errors.Is(err, unix.EUCLEAN) {
		msg += " (the filesystem found its metadata corrupt: check it with e2fsck or btrfs check)"
	}
	return msg
}

// NewUpper creates a fresh upper directory (UpperDir: upper/ and work/)
// in one atomic step with what fills it, the /etc merge: everything is
// built in TempUpperDir(Dir), flushed, and renamed to Dir when complete.
// A power cut at any point leaves either no Dir, and the next boot (whose
// upper is then fresh again) builds it anew from the same inputs after
// removing the leftover, or the complete Dir; never a half-filled upper.
//
// On btrfs the upper is a subvolume of its own, so that the next image's
// upper can start as a snapshot of it (From).
type NewUpper struct {
	Dir string
	// From, when set, is an older upper that is a btrfs subvolume
	// (IsSubvolume): the temporary directory starts as a snapshot of it,
	// cut down to its upper/etc (the rest of an upper is per image,
	// docs/data.md), with an empty work/. The old upper is only read.
	From string
	// Fill, when set, writes into the temporary directory, which already
	// holds upper/ and an empty work/ (and upper/etc from From).
	Fill func(tmp string) error
	// NoFlush leaves out the flushes, for an empty upper (no From, no
	// Fill): lost to a power cut, it is made again at the next boot, as
	// fresh as it was, and a flush would wait for everything else written
	// to the data partition (a freshly seeded @var).
	NoFlush bool
	// Step, when set, is called after each step; an error stops there as
	// a power cut would (tests).
	Step func(what string) error
}

// TempUpperDir is where NewUpper builds dir: the same parent (so the
// rename is atomic), a name starting with '.', which is never an encoded
// image id, so pruning never takes it for an upper.
func TempUpperDir(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp")
}

// Create builds the upper. Dir must not exist. A step that fails removes
// what it built (a power cut, which the Step hook stands for in tests,
// leaves it to the next Create).
func (u NewUpper) Create() error {
	if _, err := os.Lstat(u.Dir); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("new upper %s: already exists (%v), expected a fresh upper", u.Dir, err)
	}
	tmp := TempUpperDir(u.Dir)
	steps := []struct {
		what string
		do   func() error
	}{
		{"remove a leftover " + tmp, func() error { return removeLeftover(tmp) }},
		{"make " + tmp, func() error { return makeUpperDirs(tmp, u.From) }},
		{"fill " + tmp, func() error {
			if u.Fill == nil {
				return nil
			}
			return u.Fill(tmp)
		}},
		{"flush " + tmp, func() error { return syncDir(tmp, unix.Syncfs) }},
		{"rename " + tmp + " to " + u.Dir, func() error { return os.Rename(tmp, u.Dir) }},
		{"flush " + filepath.Dir(u.Dir), func() error { return syncDir(filepath.Dir(u.Dir), unix.Fsync) }},
	}
	for _, s := range steps {
		if u.NoFlush && strings.HasPrefix(s.what, "flush ") {
			continue
		}
		if err := s.do(); err != nil {
			err = fmt.Errorf("new upper %s: %s: %w", u.Dir, s.what, err)
			if _, serr := os.Lstat(tmp); serr == nil {
				// Not left for the whole boot: what failed a merge (a full
				// file system) must not stay taken by its half-made copy.
				if rerr := removeLeftover(tmp); rerr != nil {
					err = fmt.Errorf("%w; removing %s: %v", err, tmp, rerr)
				}
			}
			return err
		}
		if u.Step != nil {
			if err := u.Step(s.what); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeLeftover drops what an interrupted NewUpper left (overlayfs never
// used it, but a merge may have made read-only directories).
func removeLeftover(tmp string) error {
	if _, err := os.Lstat(tmp); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	root, err := os.OpenRoot(filepath.Dir(tmp))
	if err != nil {
		return err
	}
	defer root.Close()
	return removeTree(root, filepath.Base(tmp))
}

// makeUpperDirs makes tmp with empty upper/ and work/: a btrfs subvolume
// on btrfs, a snapshot of from (cut down to upper/etc) when from is set.
func makeUpperDirs(tmp, from string) error {
	parent := filepath.Dir(tmp)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if from != "" {
		if err := Snapshot(from, parent, filepath.Base(tmp)); err != nil {
			return err
		}
		return keepOnlyEtc(tmp)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(parent, &st); err != nil {
		return &fs.PathError{Op: "statfs", Path: parent, Err: err}
	}
	if st.Type == unix.BTRFS_SUPER_MAGIC {
		if err := CreateSubvolume(parent, filepath.Base(tmp)); err != nil {
			return err
		}
	} else if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	for _, d := range []string{filepath.Join(tmp, "upper"), filepath.Join(tmp, "work")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// keepOnlyEtc removes from tmp, a snapshot of an older upper, everything
// but upper/ and, in upper/, everything but etc/; work/ is made again
// empty (overlayfs' work/work, mode 000, included). An upper/ or etc/
// that is not a directory (a symlink would lead the merge's edits out of
// the upper) is removed too.
func keepOnlyEtc(tmp string) error {
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, p := range []string{"upper", "upper/etc"} {
		if fi, err := root.Lstat(p); err == nil && !fi.IsDir() {
			if err := root.Remove(p); err != nil {
				return err
			}
		}
	}
	for _, dir := range []string{".", "upper"} {
		ents, err := os.ReadDir(filepath.Join(tmp, dir))
		if errors.Is(err, fs.ErrNotExist) && dir == "upper" {
			break // an upper without upper/: made below
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			if dir == "." && e.Name() == "upper" || dir == "upper" && e.Name() == "etc" {
				continue
			}
			if err := removeTree(root, filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"upper", "work"} {
		if err := root.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return dropOverlayXattrs(filepath.Join(tmp, "upper"))
}

// dropOverlayXattrs removes the overlayfs attributes (impure, origin …)
// the old overlay left on dir, the snapshot's upper/: they describe the
// old image's layers, and a fresh upper has none.
func dropOverlayXattrs(dir string) error {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(dir, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list xattrs of %s: %w", dir, err)
	}
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if !strings.HasPrefix(name, "trusted.overlay.") && !strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		if err := unix.Lremovexattr(dir, name); err != nil && !errors.Is(err, unix.ENODATA) {
			return fmt.Errorf("remove xattr %s of %s: %w", name, dir, err)
		}
	}
	return nil
}

// syncDir calls sync (syncfs or fsync) on the directory dir.
func syncDir(dir string, sync func(fd int) error) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return sync(fd)
}
