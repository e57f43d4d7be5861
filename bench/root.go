// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"os"
	"path/filepath"
)

// RootInitScript is /sbin/init of the benchmark's root file system. It is a
// busybox shell script rather than a Go program so that the figure measured
// does not include a second Go runtime start-up. The marker goes to
// /dev/kmsg first thing (at level 2, which every console loglevel prints),
// so it carries a kernel timestamp on the same clock as RunInitLine. Every
// initramfs under test moves /dev into the root, but tiny-initramfs only
// /dev and /proc, hence the checks.
const RootInitScript = `#!/bin/sh
[ -c /dev/kmsg ] || /bin/busybox mount -t devtmpfs devtmpfs /dev
echo "<2>` + MarkerLine + `" >/dev/kmsg
[ -r /run/keel/boot.json ] && echo "` + BootJSONPrefix + `$(/bin/busybox tr -d '\n' </run/keel/boot.json)"
echo "` + DoneLine + `"
exec /bin/busybox poweroff -f
`

// osRelease makes the root an "OS tree": systemd in dracut's initramfs
// refuses to switch into a root without /etc/os-release.
const osRelease = "NAME=\"keel bench root\"\nID=keel-bench\n"

// rootDirs are the mount points the initramfs implementations move their
// API file systems to, and what keel expects of a root.
var rootDirs = []string{"bin", "sbin", "etc", "dev", "proc", "sys", "run", "tmp", "var", "home"}

// WriteRootTree fills dir with the benchmark's root: a static busybox as
// /bin/busybox and /bin/sh, RootInitScript as /sbin/init and /etc/os-release.
func WriteRootTree(dir, busybox string) error {
	for _, d := range rootDirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("bench root: %w", err)
		}
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("bench root: static busybox (Debian package busybox-static): %w", err)
	}
	files := []struct {
		rel  string
		data []byte
		mode os.FileMode
	}{
		{"bin/busybox", bb, 0o755},
		{"sbin/init", []byte(RootInitScript), 0o755},
		{"etc/os-release", []byte(osRelease), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.rel)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return fmt.Errorf("bench root: %w", err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // WriteFile's mode is masked by the umask
			return fmt.Errorf("bench root: %w", err)
		}
	}
	if err := os.Symlink("busybox", filepath.Join(dir, "bin/sh")); err != nil {
		return fmt.Errorf("bench root: %w", err)
	}
	return nil
}
