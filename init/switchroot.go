// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"

	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/mounts"
)

// switchRoot hands over to the real init. rd.break opens the emergency shell
// first; leaving the shell continues the boot.
func (b *boot) switchRoot() error {
	if b.cfg.Break {
		b.parkIfFailed() // not a second shell beside the emergency policy's
		b.log.Console("keel: rd.break: the new root is assembled at %s; exit the shell to continue booting", b.newRoot)
		b.shell()
	}
	b.log.Infof("switching root to %s, exec %s (%v since start)", b.newRoot, b.init, timeSince(b.start))
	if b.dev != nil {
		b.dev.Close()
	}
	b.prepareShutdown() // waits for the shutdown's copy: the last goroutine waited for
	exec := false
	err := b.switching(func() error {
		b.handOffWatchdog()
		if err := mounts.MoveAPIFilesystems(b.stack, b.newRoot, b.apiAt); err != nil {
			return err
		}
		exec = true
		err := mounts.SwitchRoot(b.newRoot, b.init, []string{b.init})
		// Only reached when exec failed, after the initramfs was freed: no
		// shell is left, only the reboot policy (set before endSwitch).
		b.cfg.Emergency = kargs.EmergencyReboot
		return err
	})
	if exec {
		b.log.Errorf("%v", err)
		fmt.Fprintf(os.Stderr, "keel: %v\n", err)
	}
	return err
}
