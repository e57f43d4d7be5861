// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/mounts"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where the init mounts the data filesystem: under /run, so
// it stays visible (and the uppers unmountable) in the booted system.
const DefaultRoot = "/run/keel/data"

// LUKS is the type devices.Probe reports for a LUKS container.
const LUKS = "crypto_LUKS"

// Probe reads the start of the data partition dev and tells what it
// holds: btrfs, ext4, or a LUKS container to unlock first. Anything else is
// an error naming what was found.
func Probe(dev string) (devices.FS, error) {
	return probeWith(dev, Identify)
}

// ProbeUnlocked is Probe for the plaintext of an unlocked data partition
// (IdentifyUnlocked).
func ProbeUnlocked(dev string) (devices.FS, error) {
	return probeWith(dev, IdentifyUnlocked)
}

func probeWith(dev string, identify func(string, io.ReaderAt) (devices.FS, error)) (devices.FS, error) {
	f, err := os.Open(dev)
	if err != nil {
		return devices.FS{}, fmt.Errorf("data partition: %w", err)
	}
	defer f.Close()
	return identify(dev, f)
}

// Identify is Probe over an already open device. A LUKS2 volume whose
// first sectors are wiped or unreadable is known by its second header
// (devices.ProbeLUKS2Second), as cryptsetup opens it: it was taken for a
// partition holding nothing, and the boot went volatile without the
// user's data (found by a hunting helper).
func Identify(dev string, r io.ReaderAt) (devices.FS, error) {
	return identify(dev, r, false)
}

// IdentifyUnlocked is Identify for the plaintext of an unlocked data
// partition, which must hold btrfs or ext4: a LUKS container there is
// refused by name (it was handed to mount as a file system type, whose
// error named none), and no second header is looked for, since the
// plaintext's bytes are the file system's, not a volume keel opens.
func IdentifyUnlocked(dev string, r io.ReaderAt) (devices.FS, error) {
	return identify(dev, r, true)
}

func identify(dev string, r io.ReaderAt, unlocked bool) (devices.FS, error) {
	fs, err := devices.Probe(r)
	if err != nil && !unlocked {
		if second, ok, serr := devices.ProbeLUKS2Second(r); ok && serr == nil {
			fs, err = second, nil
		}
	}
	want := "btrfs, ext4 or LUKS"
	if unlocked {
		want = "btrfs or ext4 inside the encryption"
	}
	if errors.Is(err, devices.ErrUnknownFS) {
		return fs, fmt.Errorf("data partition %s: no filesystem found, expected %s: %w", dev, want, err)
	}
	if err != nil {
		return fs, fmt.Errorf("data partition %s: %w", dev, err)
	}
	switch fs.Type {
	case Btrfs, Ext4:
		return fs, nil
	case LUKS:
		if !unlocked {
			return fs, nil
		}
		return fs, fmt.Errorf("data partition %s: the unlocked volume holds another LUKS container, expected %s (keel unlocks one layer)", dev, want)
	}
	return fs, fmt.Errorf("data partition %s: found %s, expected %s", dev, fs.Type, want)
}

// Mount is the mount of the data filesystem on dev at root. btrfs is
// mounted at its top level (subvolid=5), whatever its default subvolume,
// so that @var, @home and @overlay are visible side by side. ext4 is
// mounted with errors=remount-ro, whatever its superblock says: with
// errors=panic there (tune2fs -e panic), a corrupt inode read by the init
// would panic the kernel in every boot; instead the read fails, the
// filesystem turns read-only and the boot goes volatile, loudly.
func Mount(dev, fstype, root string) mounts.Mount {
	m := mounts.Mount{Source: dev, Target: root, FSType: fstype}
	switch fstype {
	case Btrfs:
		m.Data = "subvolid=5"
	case Ext4:
		m.Data = "errors=remount-ro"
	}
	return m
}

// Binds are the bind mounts of @var and @home of the data filesystem at
// dataRoot onto /var and /home of newRoot. They apply in every overlay
// mode; the image must have /var and /home directories for overlay=off.
func Binds(dataRoot, newRoot string) []mounts.Mount {
	return []mounts.Mount{
		{Source: filepath.Join(dataRoot, Var), Target: filepath.Join(newRoot, BindPoints[0]), Flags: unix.MS_BIND},
		{Source: filepath.Join(dataRoot, Home), Target: filepath.Join(newRoot, BindPoints[1]), Flags: unix.MS_BIND},
	}
}

// BindPoints are the targets of Binds in the new root.
var BindPoints = []string{"/var", "/home"}
