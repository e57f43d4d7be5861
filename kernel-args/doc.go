// SPDX-License-Identifier: Apache-2.0

// Package kargs turns the kernel command line (the contents of /proc/cmdline)
// into keel's typed boot configuration.
//
// It is pure: no I/O and no keel imports but the leaf devspec (the DEVSPEC
// type it shares with device discovery), so every other package may use its
// Config. The init parses the command line once, over the defaults that
// mkinitrd bakes into the initramfs, and passes the result down:
//
//	base, _ := kargs.FromBaked(baked.Cmdline, baked.Locked)
//	cfg, problems := kargs.Parse(procCmdline, base, baked.Locked)
//
// Bad input never aborts the boot: an option whose value cannot be used is
// ignored (the previous value stays) and reported as a Problem. A locked
// initramfs refuses options that would weaken it; docs/cmdline.md lists them.
package kargs
