// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/keel-boot/keel/mounts"
	"golang.org/x/sys/unix"
)

// plainFSTypes are tried in order when rootfstype= is not given.
var plainFSTypes = []string{"ext4", "btrfs", "xfs", "squashfs", "erofs", "f2fs", "vfat"}

// plainRoot mounts root=DEVSPEC directly, like any initramfs: read-only, the
// real init remounts it. Refused when the initramfs is locked.
func (b *boot) plainRoot(layout mounts.Layout) error {
	if b.baked.Locked {
		return fmt.Errorf("root=%s without a root hash: refused, the initramfs is locked (give roothash= via a sealed image)", b.cfg.Root)
	}
	dev, err := b.waitFor("root", b.cfg.Root)
	if err != nil {
		return err
	}
	b.rep.Devices = map[string]string{"root": dev}
	b.warnLoud("plain root %s: root NOT VERIFIED: nothing authenticates what it runs", dev)
	types := plainFSTypes
	if b.cfg.RootFSType != "" {
		types = []string{b.cfg.RootFSType}
	}
	target := layout.NewRoot
	overlay := b.cfg.Overlay == mounts.OverlayTmpfs
	if overlay {
		target = layout.Lower
	}
	if err := b.mountAny(dev, target, types, b.cfg.RootFlags); err != nil {
		return err
	}
	if overlay {
		return b.assemble(layout, "")
	}
	b.rep.Overlay = mounts.OverlayOff
	b.prepareData(layout, "")
	mark := b.stack.Len()
	if err := b.bindData(layout); err != nil {
		// The plain root is mounted at NewRoot itself: undo only the binds.
		for _, e := range b.stack.UndoTo(mark) {
			b.log.Warnf("undo the data partition's binds: %v", e)
		}
		b.volatile(b.data.dev, err)
	}
	return b.checkInit(layout.NewRoot)
}

// mountAny mounts dev read-only trying each filesystem type in turn.
func (b *boot) mountAny(dev, target string, types []string, data string) error {
	var errs []string
	for _, t := range types {
		b.need(t)
		err := b.stack.Do(mounts.Mount{Source: dev, Target: target, FSType: t, Flags: unix.MS_RDONLY, Data: withErrorsOption(t, data)})
		if err == nil {
			b.log.Infof("mounted %s on %s as %s", dev, target, t)
			return nil
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENODEV) || len(types) == 1 {
			return err
		}
		errs = append(errs, t)
	}
	return fmt.Errorf("mount %s: not a filesystem this initramfs can mount (tried %s)", dev, strings.Join(errs, ", "))
}

// withErrorsOption adds errors=remount-ro to an ext2/3/4 mount's options unless
// they say errors= (rootflags=, the operator's choice): a superblock set to
// errors=panic (tune2fs -e panic) and a corrupt inode that the init reads
// (its check of /sbin/init) would otherwise panic the kernel in every boot
// (docs/cmdline.md, rootflags=). The option stays after switch_root unless
// the system's fstab sets another.
func withErrorsOption(fstype, data string) string {
	if fstype != "ext4" && fstype != "ext3" && fstype != "ext2" {
		return data // the ext4 driver mounts all three; errors= is theirs
	}
	for _, o := range strings.Split(data, ",") {
		if strings.HasPrefix(o, "errors=") {
			return data
		}
	}
	if data == "" {
		return "errors=remount-ro"
	}
	return data + ",errors=remount-ro"
}
