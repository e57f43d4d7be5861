// SPDX-License-Identifier: Apache-2.0

// Package unlock opens LUKS2 volumes in the initramfs: it reads and checks
// both copies of the LUKS2 header itself, recovers the volume key from a
// key file or a passphrase (PBKDF2 or Argon2 key slots, the anti-forensic
// split, the digest check), maps the volume with dm-crypt and makes the
// /dev/mapper node itself (there is no udev), and asks for a passphrase
// on the console with echo off, a few tries and an optional timeout
// (Prompter). Key derivation is charged to a per-boot budget (KDFBudget),
// so a hostile header cannot keep PID 1 deriving keys for hours.
//
// A wrong key is an error that names the volume and the key's kind, never a
// hang: `data (LUKS2 /dev/vda6): no key slot matches the passphrase`.
// A damaged or hostile header is an error naming the header copy and the
// JSON field, never a panic or an allocation that could exhaust memory.
package unlock
