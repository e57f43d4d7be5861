// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"

	"github.com/keel-boot/keel/mounts"
)

// earlyMounts is the early-mounts phase: /proc, /sys, /dev (devtmpfs) and
// /run, then /dev/kmsg for the log.
func (b *boot) earlyMounts() error {
	b.stack = mounts.NewStack()
	for _, m := range mounts.Early() {
		if err := b.stack.Do(m); err != nil {
			return fmt.Errorf("early mounts: %w", err)
		}
	}
	b.log.openKmsg()
	return nil
}
