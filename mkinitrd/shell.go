// SPDX-License-Identifier: Apache-2.0

package main

import (
	"debug/elf"
	"fmt"
	"io"
	"os"

	"github.com/keel-boot/keel/initramfs"
)

// applets are the busybox commands the emergency shell offers, linked in
// /bin, as docs/initramfs.md lists them: ls, cat, mount, dmesg and reboot to
// look around and leave; the rest are what debugging a failed verity or LUKS
// setup by hand takes.
func applets() []string {
	return []string{"sh", "ls", "cat", "mount", "umount", "dmesg", "reboot", "poweroff",
		"mkdir", "ps", "grep", "less", "vi", "ip", "switch_root", "blkid", "losetup",
		"dd", "hexdump", "echo", "sleep", "sync"}
}

// builtinShell selects the rescue shell linked into the init.
const builtinShell = "builtin"

// addShell installs the emergency shell and returns its path for the baked
// config: for the built-in one a /bin/sh link to the init (which runs the
// shell when started as sh); otherwise busybox as /bin/busybox with its
// applet links.
func addShell(a initramfs.Archive, busybox string) (string, error) {
	if busybox == builtinShell {
		return "/bin/sh", a.Add("/bin/sh", initramfs.Symlink("/init"))
	}
	isELF, err := checkStatic(busybox, "--shell")
	if err != nil {
		return "", err
	}
	if !isELF {
		return "", fmt.Errorf("--shell %s: not an ELF binary, expected a static busybox", busybox)
	}
	if err := a.Add("/bin/busybox", initramfs.File(busybox, 0o755)); err != nil {
		return "", err
	}
	for _, app := range applets() {
		if err := a.Add("/bin/"+app, initramfs.Symlink("busybox")); err != nil {
			return "", err
		}
	}
	return "/bin/sh", nil
}

// checkStatic refuses dynamically linked ELF binaries: the initramfs has no
// libc or dynamic loader for them. It reports whether path is ELF at all;
// the caller decides whether anything else is acceptable.
func checkStatic(path, flagName string) (isELF bool, err error) {
	head := make([]byte, len(elf.ELFMAG))
	fh, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("%s: %w", flagName, err)
	}
	defer fh.Close()
	if _, err := io.ReadFull(fh, head); err != nil || string(head) != elf.ELFMAG {
		return false, nil
	}
	f, err := elf.NewFile(fh)
	if err != nil {
		return true, fmt.Errorf("%s %s: %w", flagName, path, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true, fmt.Errorf("%s %s is dynamically linked; the initramfs has no libc", flagName, path)
		}
	}
	return true, nil
}
