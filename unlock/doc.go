// Package unlock opens LUKS2 volumes in the initramfs: it
// recognises the header, recovers the volume key from a key file or a
// passphrase through github.com/anatol/luks.go, maps the volume with
// dm-crypt and makes the /dev/mapper node itself (there is no udev), and
// asks for a passphrase on the console with echo off and a few tries.
//
// A wrong key is an error that names the volume and the key's kind, never a
// hang: `data (LUKS2 /dev/vda6): no key slot matches the passphrase`.
package unlock
