// SPDX-License-Identifier: Apache-2.0

//go:build tools

// Package tools pins the modules keel builds with, so that go.sum stays
// complete while packages that use them are being written.
package tools

import (
	_ "github.com/anatol/devmapper.go"
	_ "github.com/hugelgupf/vmtest/qemu"
	_ "github.com/klauspost/compress/zstd"
	_ "golang.org/x/sys/unix"
)
