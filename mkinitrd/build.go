// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/initramfs"
)

// summary is what the one-line report says.
type summary struct {
	modules, firmware int
	shell, locked     bool
	keys              int
}

// build assembles the archive and writes the image.
func build(o *options, stdout, stderr io.Writer) error {
	a := initramfs.Archive{}
	if err := addSkeleton(a, o.init); err != nil {
		return err
	}
	cfg := &bakedconf.Config{Locked: o.locked, Cmdline: o.cmdline, Kver: o.kver, DataMustBeEncrypted: o.dataEncrypted, MaxUnconfirmed: o.maxUnconfirmed}
	sum := summary{locked: o.locked}
	var err error
	if cfg.TrustedKeys, err = readTrustedKeys(o.trust); err != nil {
		return err
	}
	sum.keys = len(cfg.TrustedKeys)
	if cfg.Modules, sum.firmware, err = addModules(a, o, stderr); err != nil {
		return err
	}
	sum.modules = len(cfg.Modules)
	if o.shell != "" {
		if cfg.Shell, err = addShell(a, o.shell); err != nil {
			return err
		}
		sum.shell = true
	}
	if err := addExtras(a, o.adds); err != nil {
		return err
	}
	if o.luksKey != "" {
		if cfg.LUKSKeyfile, err = addLUKSKey(a, o.luksKey); err != nil {
			return err
		}
	}
	seg := initSegment(o, stderr)
	if seg != nil {
		delete(a, "init") // it comes in the segment
	}
	conf, err := cfg.Marshal()
	if err != nil {
		return fmt.Errorf("baked config: %w", err)
	}
	if err := a.Add(bakedconf.Path, initramfs.Bytes(conf, 0o644)); err != nil {
		return err
	}
	size, err := writeImage(o.out, seg, a, o.compress, o.mtime)
	if err != nil {
		return err
	}
	plainData := "allowed"
	if o.dataEncrypted {
		plainData = "refused"
	}
	fmt.Fprintf(stdout, "%s: %s %s, %d modules, %d firmware files, shell %s, locked %s, %d trusted keys, plain data partition %s, init precompressed %s\n",
		o.out, humanSize(size), o.compress, sum.modules, sum.firmware, yesNo(sum.shell), yesNo(sum.locked), sum.keys,
		plainData, yesNo(seg != nil))
	return nil
}

// addSkeleton adds what every keel initramfs has: /init, the mount points
// the init uses before devtmpfs is up, and the device nodes it needs then.
// /dev/console matters most: without it the init has no stdin, stdout or
// stderr and the Go runtime dies before main.
func addSkeleton(a initramfs.Archive, init string) error {
	fi, err := os.Stat(init)
	if err != nil {
		return fmt.Errorf("--init: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("--init %s: is %v, expected the keel init binary", init, fi.Mode().Type())
	}
	// A stand-in that is not ELF (a test stub) is the caller's business.
	if _, err := checkStatic(init, "--init"); err != nil {
		return err
	}
	entries := []struct {
		path string
		e    initramfs.Entry
	}{
		{"/init", initramfs.File(init, 0o755)},
		{"/dev", initramfs.Dir(0o755)},
		{"/dev/console", initramfs.CharDev(5, 1, 0o600)},
		{"/dev/null", initramfs.CharDev(1, 3, 0o666)},
		{"/dev/kmsg", initramfs.CharDev(1, 11, 0o644)},
		{"/proc", initramfs.Dir(0o555)},
		{"/sys", initramfs.Dir(0o555)},
		{"/run", initramfs.Dir(0o755)},
		{"/tmp", initramfs.Dir(0o777 | fs.ModeSticky)},
	}
	for _, en := range entries {
		if err := a.Add(en.path, en.e); err != nil {
			return err
		}
	}
	return nil
}

// addExtras adds --add SRC:DST files, directories (recursively) and symlinks.
func addExtras(a initramfs.Archive, adds []string) error {
	for _, add := range adds {
		src, dst, ok := strings.Cut(add, ":")
		if !ok || src == "" || !strings.HasPrefix(dst, "/") {
			return fmt.Errorf("--add %q: expected SRC:DST with an absolute DST", add)
		}
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			return addHostFile(a, p, filepath.Join(dst, rel), d)
		})
		if err != nil {
			return fmt.Errorf("--add %s: %w", add, err)
		}
	}
	return nil
}

func addHostFile(a initramfs.Archive, src, dst string, d fs.DirEntry) error {
	fi, err := d.Info()
	if err != nil {
		return err
	}
	switch {
	case d.IsDir():
		return a.Add(dst, initramfs.Dir(fi.Mode().Perm()))
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return a.Add(dst, initramfs.Symlink(target))
	case fi.Mode().IsRegular():
		return a.Add(dst, initramfs.File(src, fi.Mode().Perm()))
	}
	return fmt.Errorf("%s: is %v, expected a file, directory or symlink", src, fi.Mode().Type())
}

func humanSize(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// luksKeyPath is where a baked LUKS key file lives in the initramfs.
const luksKeyPath = "/etc/keel/luks.key"

// addLUKSKey bakes the data partition's key file in, readable by root only.
func addLUKSKey(a initramfs.Archive, src string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("--luks-keyfile: %w", err)
	}
	if len(b) == 0 {
		return "", fmt.Errorf("--luks-keyfile %s: empty, expected the key file given to cryptsetup", src)
	}
	return luksKeyPath, a.Add(luksKeyPath, initramfs.Bytes(b, 0o400))
}
