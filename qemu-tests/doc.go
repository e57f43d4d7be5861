// SPDX-License-Identifier: Apache-2.0

// Package qemutests holds keel's end-to-end scenarios: each boots the test
// kernel in QEMU with an initramfs and disk images that the test builds, and
// asserts on the serial console. They are skipped with -short; package vm is
// the harness, package report the test payload's output, and the payload
// (./payload) the init of the test root images. TestPackageTestsInVM is the
// odd one: it boots no keel, but runs the privileged package tests (dm,
// verity, unlock) in the test kernel under ./pkgrun.
package qemutests
