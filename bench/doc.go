// SPDX-License-Identifier: Apache-2.0

// Package bench measures keel against the initramfs generators Debian ships
// (initramfs-tools, dracut, tiny-initramfs): how long each takes to build
// its image, how big the image is, and how long the machine spends in the
// initramfs — from the kernel's "Run /init" line to the first line of the
// root file system's init, both stamped by the kernel's printk clock — when
// each boots the same root disk in the same QEMU. It also times keel's /etc
// merge (etcmerge's BenchmarkMerge) on the host and inside the test kernel
// (etcmerge_tcg_test.go).
//
// `make bench` runs TestBench in bench_test.go (KEEL_BENCH=1); this package
// holds what that driver needs and can be tested without QEMU: the root's
// init script, the peers' generator command lines, console parsing, the
// statistics, the result tables and BENCHMARKS.md.
package bench
