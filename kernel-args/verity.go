// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"fmt"
	"slices"
	"strings"
)

// dm-verity optional arguments, in the kernel's spelling
// (https://docs.kernel.org/admin-guide/device-mapper/verity.html).
const (
	RestartOnCorruption = "restart_on_corruption"
	PanicOnCorruption   = "panic_on_corruption"
	IgnoreCorruption    = "ignore_corruption"
	CheckAtMostOnce     = "check_at_most_once"
	IgnoreZeroBlocks    = "ignore_zero_blocks"
)

// WithoutMode is opts without its corruption mode: what is left maps a
// device on which a block that fails verification is an I/O error (the
// kernel's default), neither a restart nor a panic nor ignored. Never nil.
func WithoutMode(opts []string) []string {
	out := []string{}
	for _, o := range opts {
		if !isMode(o) {
			out = append(out, o)
		}
	}
	return out
}

// isMode reports whether o chooses what happens on corruption; the kernel
// takes at most one of these.
func isMode(o string) bool {
	return o == RestartOnCorruption || o == PanicOnCorruption || o == IgnoreCorruption
}

// weakens reports whether o lowers what dm-verity guarantees: corrupt data is
// served, or blocks are checked only on first read so online tampering of the
// device goes unseen.
func weakens(o string) bool {
	return o == IgnoreCorruption || o == CheckAtMostOnce
}

// parseVerityOptions turns systemd.verity_root_options=a,b into kernel
// option names: '-' and '_' are alike, case is ignored, empty items and
// repeats are dropped. The result names exactly one corruption mode, first:
// restart_on_corruption is the default when none is named (docs/cmdline.md,
// systemd.verity_root_options=); named says whether v named one.
func parseVerityOptions(v string, locked bool) (opts []string, named bool, reason string) {
	mode := ""
	var flags []string
	for _, item := range strings.Split(v, ",") {
		o := strings.ToLower(strings.ReplaceAll(item, "-", "_"))
		switch {
		case o == "":
			continue
		case o != RestartOnCorruption && o != PanicOnCorruption && o != IgnoreCorruption &&
			o != CheckAtMostOnce && o != IgnoreZeroBlocks:
			return nil, false, fmt.Sprintf("unknown option %q, expected a comma-separated list of "+
				"restart-on-corruption, panic-on-corruption, ignore-corruption, check-at-most-once, ignore-zero-blocks", item)
		case locked && weakens(o):
			return nil, false, fmt.Sprintf("%s (%s weakens dm-verity)", refusedLocked, o)
		case isMode(o) && mode != "" && mode != o:
			return nil, false, fmt.Sprintf("%s and %s both chosen, expected at most one corruption mode", mode, o)
		case isMode(o):
			mode = o
		case !slices.Contains(flags, o):
			flags = append(flags, o)
		}
	}
	named = mode != ""
	if !named {
		mode = RestartOnCorruption
	}
	return append([]string{mode}, flags...), named, ""
}

// strengthen replaces or drops the options a locked initramfs refuses.
func strengthen(opts []string) []string {
	out := make([]string, 0, len(opts)+1)
	mode := RestartOnCorruption
	for _, o := range opts {
		switch {
		case o == PanicOnCorruption:
			mode = o
		case isMode(o) || weakens(o) || slices.Contains(out, o):
		default:
			out = append(out, o)
		}
	}
	return append([]string{mode}, out...)
}
