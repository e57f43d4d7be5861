// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

const (
	// SeedMarker in @var says its seeding from the image is complete.
	SeedMarker = ".keel-seeded"
	// seedTemp in @var receives the copy before it is moved into place.
	seedTemp = ".keel-seed.tmp"
)

// SeedVar copies the image's /var (imageVar, read from the read-only lower
// layer) into @var (dataVar) unless dataVar has the SeedMarker: image /var
// is seed data, like a container VOLUME's content, copied once. It reports
// whether it seeded.
//
// A crash at any point is retried at the next boot rather than leaving half
// a /var: the tree is copied into dataVar/.keel-seed.tmp, flushed, each
// top-level entry is renamed into place (atomic per entry), and the marker
// is written last. An entry already in dataVar is kept and its seed copy
// dropped, so a retry and a @var a user populated by hand both keep what is
// there. The temporary directory is the only thing ever removed.
//
// No symlink is ever followed on the data partition: dataVar must be a
// directory, a symlink at the temporary path is removed as a symlink, and
// every file is created with O_EXCL.
func SeedVar(imageVar, dataVar string, progress func()) (seeded bool, err error) {
	if fi, err := os.Lstat(dataVar); err != nil {
		return false, fmt.Errorf("seeding /var: %w", err)
	} else if !fi.IsDir() {
		return false, fmt.Errorf("seeding /var: %s is a %s, expected a directory (left untouched)", dataVar, Kind(fi.Mode()))
	}
	marker := filepath.Join(dataVar, SeedMarker)
	if _, err := os.Lstat(marker); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("seeding /var: %w", err)
	}
	if err := dropSeedTemp(dataVar); err != nil {
		return false, err
	}
	if err := seedEntries(imageVar, dataVar, progress); err != nil {
		return false, err
	}
	if err := writeMarker(dataVar, marker); err != nil {
		return false, err
	}
	return true, nil
}

// dropSeedTemp removes what an interrupted seeding left behind.
func dropSeedTemp(dataVar string) error {
	root, err := os.OpenRoot(dataVar)
	if err != nil {
		return fmt.Errorf("seeding /var: %w", err)
	}
	defer root.Close()
	if _, err := root.Lstat(seedTemp); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := removeTree(root, seedTemp); err != nil {
		return fmt.Errorf("seeding /var: removing the leftover %s: %w", filepath.Join(dataVar, seedTemp), err)
	}
	return nil
}

// seedEntries copies imageVar into the temporary directory and moves its
// entries into dataVar. An image without /var seeds nothing.
func seedEntries(imageVar, dataVar string, progress func()) error {
	var st unix.Stat_t
	err := unix.Lstat(imageVar, &st)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("seeding /var: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("seeding /var: image %s is not a directory", imageVar)
	}
	tmp := filepath.Join(dataVar, seedTemp)
	if err := copyTree(imageVar, tmp, progress); err != nil {
		return fmt.Errorf("seeding /var: %w", err)
	}
	if err := syncFS(dataVar); err != nil {
		return err
	}
	if err := moveEntries(tmp, dataVar); err != nil {
		return err
	}
	// /var itself gets the image's owner and mode (the subvolume was born
	// root 0755, which is what images have anyway).
	if err := setOwnerMode(dataVar, &st); err != nil {
		return err
	}
	return dropSeedTemp(dataVar)
}

// setOwnerMode gives the directory dir the owner and mode of st, through a
// descriptor opened without following a symlink.
func setOwnerMode(dir string, st *unix.Stat_t) error {
	fd, err := openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("seeding /var: chown %s: %w", dir, err)
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("seeding /var: chmod %s: %w", dir, err)
	}
	return nil
}

// openDir opens the directory dir, failing on a symlink rather than
// following it.
func openDir(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("seeding /var: open %s (a directory, not a symlink): %w", dir, err)
	}
	return fd, nil
}

// moveEntries renames each entry of tmp into dir unless dir already has
// one of that name.
func moveEntries(tmp, dir string) error {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("seeding /var: %w", err)
	}
	for _, e := range entries {
		dst := filepath.Join(dir, e.Name())
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.Rename(filepath.Join(tmp, e.Name()), dst); err != nil {
			return fmt.Errorf("seeding /var: %w", err)
		}
	}
	return nil
}

// writeMarker flushes the seeded tree and then writes the marker durably,
// so the marker never exists without the data.
func writeMarker(dataVar, marker string) error {
	if err := syncFS(dataVar); err != nil {
		return err
	}
	const text = "keel copied the image's /var here once. Remove this file to seed again; entries already here are kept.\n"
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("seeding /var: %w", err)
	}
	_, err = f.WriteString(text)
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("seeding /var: writing %s: %w", marker, err)
	}
	// syncfs flushes the marker with everything else: an fsync of it first
	// would cost one more commit (a btrfs log tree write) for nothing.
	return syncFS(dataVar)
}

// syncFS flushes the whole filesystem holding dir: cheaper than an fsync
// per copied file, and it covers the renames too.
func syncFS(dir string) error {
	fd, err := openDir(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("seeding /var: syncfs %s: %w", dir, err)
	}
	return nil
}
