// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// SetAside is the directory, in a slot's directory under @overlay, that
// keeps the uppers SetAsideUppers moved there. Its name starts with '.', so
// it is never taken for an image's upper.
const SetAside = ".set-aside"

// SetAsideUppers moves every upper in slot's directory under @overlay
// (a directory named by an encoded image id and laid out as keel's upper,
// as PruneUppers decides) into slot/SetAside under the same name, and
// returns the new paths. An upper set aside earlier under that name is
// removed first: one set-aside upper per image is kept, until the image
// leaves the slot (PruneUppers) or the next one replaces it.
//
// The init calls it for the other slot when the last good image boots with
// its persistent upper and that slot is not good (docs/data.md): an upper
// of a trial was merged from the last good image's /etc as it was then,
// which this boot may change, so the trial's next boot must merge again
// rather than reuse it. Setting aside instead of removing keeps what was
// changed during the trial for the operator to look at.
//
// stale, when not nil, picks the uppers to set aside from their record of
// the /etc merge that made them (EtcMergeFile: its bytes, or the error of
// its read, fs.ErrNotExist for an upper no merge made): the init sets
// aside only the copies of the last good image's /etc, not a formerly good
// image's own upper, a rollback target (docs/data.md).
//
// Every step goes through an os.Root at @overlay (no symlink leads outside),
// and the slot's directory is flushed after the renames, so that a power
// cut after this boot changed /etc cannot bring a stale upper back.
func SetAsideUppers(dataRoot, slot string, stale func(record []byte, err error) bool) (moved []string, err error) {
	if err := checkSlot(slot); err != nil {
		return nil, fmt.Errorf("setting uppers aside: %w", err)
	}
	dir := filepath.Join(dataRoot, Overlay)
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("setting uppers aside: %w", err)
	}
	defer root.Close()
	rels, err := uppersIn(root, slot, "")
	if err != nil {
		return nil, fmt.Errorf("setting uppers aside in slot %s: %w", slot, err)
	}
	aside := filepath.Join(slot, SetAside)
	var errs []error
	for _, rel := range rels {
		if stale != nil && !stale(readRecord(root, filepath.Join(rel, EtcMergeFile))) {
			continue
		}
		if err := ensureDir(root, aside); err != nil {
			return moved, err
		}
		to := filepath.Join(aside, filepath.Base(rel))
		if _, err := root.Lstat(to); err == nil {
			if err := removeTree(root, to); err != nil {
				errs = append(errs, fmt.Errorf("setting the upper %s aside: removing the one set aside before: %w", filepath.Join(dir, rel), err))
				continue
			}
		}
		if err := root.Rename(rel, to); err != nil {
			errs = append(errs, fmt.Errorf("setting the upper %s aside: %w", filepath.Join(dir, rel), err))
			continue
		}
		moved = append(moved, filepath.Join(dir, to))
	}
	if len(moved) > 0 {
		for _, d := range []string{slot, aside} {
			if err := flushRootDir(root, d); err != nil {
				errs = append(errs, fmt.Errorf("setting uppers aside: flushing %s: %w", filepath.Join(dir, d), err))
			}
		}
	}
	return moved, errors.Join(errs...)
}

// maxRecord bounds the read of an upper's record of its /etc merge: the
// init writes a few hundred bytes, and the data partition is writable by
// the running system.
const maxRecord = 64 << 10

// readRecord reads the upper's record of its /etc merge at rel under root,
// as the data partition's bytes: a symlink is not followed, the open does
// not wait (a FIFO), anything but a regular file is an error, and so is
// one larger than maxRecord (a sparse file of terabytes, read whole,
// would end PID 1 out of memory).
func readRecord(root *os.Root, rel string) ([]byte, error) {
	// os.Root follows a symlink that stays inside it whatever the flags:
	// look first. One swapped in after the look still resolves inside
	// @overlay, and the Stat of what was opened decides.
	fi, err := root.Lstat(rel)
	if err != nil {
		return nil, err
	}
	f := (*os.File)(nil)
	if fi.Mode().IsRegular() {
		if f, err = root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			return nil, err
		}
		defer f.Close()
		if fi, err = f.Stat(); err != nil {
			return nil, err
		}
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is a %s, expected a regular file", filepath.Join(root.Name(), rel), Kind(fi.Mode()))
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRecord {
		return nil, fmt.Errorf("%s is larger than %d bytes, expected a record of an /etc merge", filepath.Join(root.Name(), rel), maxRecord)
	}
	return b, nil
}

// ensureDir makes rel under root a directory (mode 0700, as @overlay),
// refusing anything else found there.
func ensureDir(root *os.Root, rel string) error {
	fi, err := root.Lstat(rel)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("setting uppers aside: %s is a %s, expected a directory (left untouched)", filepath.Join(root.Name(), rel), Kind(fi.Mode()))
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("setting uppers aside: %w", err)
	}
	if err := root.Mkdir(rel, 0o700); err != nil {
		return fmt.Errorf("setting uppers aside: %w", err)
	}
	return nil
}

// flushRootDir flushes the directory rel under root: its entries are on disk.
func flushRootDir(root *os.Root, rel string) error {
	f, err := root.Open(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// OtherUppers reports whether @overlay holds an upper (PruneUppers' test:
// a directory named by an encoded image id, laid out as keel's upper) other
// than dir, set-aside ones included: on a data partition that has served
// other images, an upper made without the /etc merge would miss the
// machine's configuration.
func OtherUppers(dataRoot, dir string) bool {
	found := false
	eachUpper(dataRoot, true, func(_, path string) {
		found = found || path != dir
	})
	return found
}

// ImageUpper is an image's upper found under @overlay: its slot, its image
// id, and its directory.
type ImageUpper struct {
	Slot, ImageID, Dir string
}

// ImageUppers lists the uppers under @overlay (as OtherUppers finds them),
// but not those set aside (a trial's) and not dir, sorted by slot and
// image id: where the machine's /etc may be when the boot state cannot say.
func ImageUppers(dataRoot, dir string) []ImageUpper {
	var out []ImageUpper
	eachUpper(dataRoot, false, func(slot, path string) {
		if id, err := DecodeImageID(filepath.Base(path)); err == nil && path != dir && checkSlot(slot) == nil {
			out = append(out, ImageUpper{Slot: slot, ImageID: id, Dir: path})
		}
	})
	return out
}

// eachUpper calls f with the slot and path of every upper under @overlay,
// in order, set-aside ones too when setAside is set. Every step goes
// through an os.Root at @overlay: no symlink is followed.
func eachUpper(dataRoot string, setAside bool, f func(slot, path string)) {
	overlay := filepath.Join(dataRoot, Overlay)
	root, err := os.OpenRoot(overlay)
	if err != nil {
		return
	}
	defer root.Close()
	slotDirs, _ := fs.ReadDir(root.FS(), ".")
	for _, s := range slotDirs {
		if !s.IsDir() { // a symlink too: never followed
			continue
		}
		dirs := []string{s.Name()}
		if setAside {
			dirs = append(dirs, filepath.Join(s.Name(), SetAside))
		}
		for _, d := range dirs {
			rels, _ := uppersIn(root, d, "")
			for _, rel := range rels {
				f(s.Name(), filepath.Join(overlay, rel))
			}
		}
	}
}
