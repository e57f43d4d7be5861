// SPDX-License-Identifier: Apache-2.0

// Package kmod resolves the kernel modules an initramfs needs and loads them
// at boot.
//
// The build side (Resolve) reads depmod's text indexes under
// /lib/modules/KVER: modules.dep, modules.softdep, modules.alias,
// modules.builtin and modules.builtin.modinfo. It follows hard dependencies,
// soft dependencies and aliases, since there is no modprobe in the initramfs
// for the kernel to call when a module asks for another one by name.
//
// The boot side (Load) is small on purpose: it loads a baked plan in
// parallel along its dependency graph with finit_module(2).
package kmod

import (
	"path"
	"strings"
)

// Normalize returns the kernel's spelling of a module name: the kernel treats
// "-" and "_" in module names alike and reports "_".
func Normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// NameFromPath returns the module name of a path such as
// "kernel/drivers/md/dm-crypt.ko.zst" ("dm_crypt").
func NameFromPath(p string) string {
	return Normalize(strings.TrimSuffix(StripCompression(path.Base(p)), ".ko"))
}

// StripCompression drops a ".xz", ".zst" or ".gz" suffix after ".ko".
func StripCompression(p string) string {
	for _, ext := range []string{".xz", ".zst", ".gz"} { // what depmod accepts
		if strings.HasSuffix(p, ".ko"+ext) {
			return strings.TrimSuffix(p, ext)
		}
	}
	return p
}

// normalizeAlias turns "-" into "_" outside bracket expressions, as kmod does
// before it compares an alias with the patterns of modules.alias: inside
// brackets "-" is a range.
func normalizeAlias(s string) string {
	if !strings.Contains(s, "-") {
		return s // nothing to change: no copy (the init matches every device against every pattern)
	}
	b := []byte(s)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}
