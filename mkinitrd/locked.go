// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"strings"

	kargs "github.com/keel-boot/keel/kernel-args"
)

// checkLocked refuses to build a locked initramfs that could not keep its
// promise (docs/security.md): one with nothing to trust (no --trust key and
// no baked roothash=), which would accept any unsigned slot header; one
// whose baked --cmdline holds options a locked init refuses; and one whose
// baked root is a plain device, which a locked init never boots.
func checkLocked(trust []string, cmdline string) error {
	base, problems := kargs.FromBaked(cmdline, true)
	if len(problems) > 0 {
		list := make([]string, 0, len(problems))
		for _, p := range problems {
			list = append(list, p.Error())
		}
		return fmt.Errorf("--cmdline with --locked: %s", strings.Join(list, "; "))
	}
	if base.PlainRoot() {
		return fmt.Errorf("--cmdline root=%s with --locked: a plain root (no roothash= or systemd.verity_root_hash=) is never booted by a locked initramfs", base.Root)
	}
	if len(trust) == 0 && base.RootHash == "" {
		return errors.New("--locked without --trust: a locked initramfs needs at least one --trust KEY.pub " +
			"(the ed25519 public key that signs the slot headers, as `slotctl keygen` writes it) " +
			"or a root hash baked with --cmdline roothash=HEX; without either it would boot unsigned images")
	}
	return nil
}
