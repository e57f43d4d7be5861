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
func SeedVar(imageVar, dataVar string) (seeded bool, err error) {
	marker := filepath.Join(dataVar, SeedMarker)
	if _, err := os.Lstat(marker); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("seeding /var: %w", err)
	}
	if err := dropSeedTemp(dataVar); err != nil {
		return false, err
	}
	if err := seedEntries(imageVar, dataVar); err != nil {
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
func seedEntries(imageVar, dataVar string) error {
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
	if err := copyTree(imageVar, tmp); err != nil {
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
	if err := unix.Chown(dataVar, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("seeding /var: chown %s: %w", dataVar, err)
	}
	if err := unix.Chmod(dataVar, st.Mode&0o7777); err != nil {
		return fmt.Errorf("seeding /var: chmod %s: %w", dataVar, err)
	}
	return dropSeedTemp(dataVar)
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
	f, err := os.OpenFile(marker, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("seeding /var: %w", err)
	}
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("seeding /var: writing %s: %w", marker, err)
	}
	return syncFS(dataVar)
}

// syncFS flushes the whole filesystem holding dir: cheaper than an fsync
// per copied file, and it covers the renames too.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("seeding /var: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("seeding /var: syncfs %s: %w", dir, err)
	}
	return nil
}
