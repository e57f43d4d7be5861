// SPDX-License-Identifier: Apache-2.0

// Package guard holds tests that keep decisions about the whole tree from
// being undone by accident: what the init must never link (deps_test.go)
// and the licence header of every Go file (spdx_test.go). It has no code.
package guard
