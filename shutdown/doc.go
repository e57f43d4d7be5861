// SPDX-License-Identifier: Apache-2.0

// Package shutdown is keel's side of the initrd shutdown interface
// (docs/boot-sequence.md, "Shutdown"): before its final reboot or power-off,
// systemd-shutdown pivots into /run/initramfs, leaves the old root at
// /oldroot and executes /run/initramfs/shutdown VERB. keel's init, started
// under that name, undoes what it set up at boot: it unmounts everything
// below /oldroot deepest first, removes the device-mapper devices it
// created, syncs and performs the verb.
//
// The package holds the pure parts, unit-tested and fuzzed on the host: the
// mountinfo parser and the unmount order, the undo record the init writes at
// boot (State), the verb, and the undo sequence over a syscall seam (Sys)
// where every step is bounded in time. It knows nothing about slots, verity
// or LUKS: device-mapper devices are names to remove.
package shutdown
