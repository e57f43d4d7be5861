// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"os"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestDebianRootBoots builds the Debian root of scripts/debian-root.sh and
// boots it to multi-user.target, with Debian's own initramfs standing in for
// keel's, so the root that keel scenarios switch into is known to work.
func TestDebianRootBoots(t *testing.T) {
	vm.Short(t)
	vm.Slow(t)
	t.Parallel()
	initrd := "/boot/initrd.img-" + vm.KVer(t)
	if _, err := os.Stat(initrd); err != nil {
		t.Skipf("Debian's initramfs for the test kernel: %v", err)
	}
	start := time.Now()
	root := vm.MkExt4(t, vm.DebianRoot(t), 512, "debian-root")
	t.Logf("Debian root image ready in %v", time.Since(start).Round(time.Second))
	start = time.Now()
	m := vm.Start(t, vm.Options{Initrd: initrd, Disks: []string{root}, Cmdline: "root=/dev/vda rw"})
	m.Expect("KEEL-SYSTEMD: multi-user reached")
	t.Logf("multi-user.target reached %v after QEMU started", time.Since(start).Round(time.Second))
	m.Kill()
}
