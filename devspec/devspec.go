// SPDX-License-Identifier: Apache-2.0

// Package devspec is the DEVSPEC: how keel names a block device on the
// command line, in the baked configuration and in its tools — /dev/NAME,
// UUID=, PARTUUID=, LABEL= or PARTLABEL= (docs/cmdline.md).
//
// It is a leaf: pure text, no I/O and no keel imports, so the command-line
// parser, device discovery and the tools share one type, one parser and one
// set of rules. It knows nothing about how a spec is matched to a device.
package devspec

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// Kind is what a Spec names a device by; its text is the DEVSPEC tag.
type Kind string

// The kinds of Spec.
const (
	Path      Kind = "path"      // /dev/NAME
	UUID      Kind = "UUID"      // file system (or LUKS) UUID
	PartUUID  Kind = "PARTUUID"  // GPT partition GUID, or MBR disk signature-partition number
	Label     Kind = "LABEL"     // file system label
	PartLabel Kind = "PARTLABEL" // GPT partition name
)

// ErrNotDevSpec is wrapped by every Parse error.
var ErrNotDevSpec = errors.New("not a DEVSPEC (expected /dev/NAME, UUID=, PARTUUID=, LABEL= or PARTLABEL=)")

// Limits that keep a hostile command line from producing absurd values; real
// labels are far shorter (ext4 16 bytes, GPT 36 UTF-16 units, btrfs 255).
const (
	maxPath  = 4096
	maxLabel = 255
	maxUUID  = 64
)

// Spec is a parsed DEVSPEC. UUID and PARTUUID values are lowercased (blkid
// prints some, vfat serials and MBR ids, in upper case); labels and paths are
// kept byte for byte. The zero Spec is not valid.
type Spec struct {
	Kind  Kind
	Value string // the path for Path, else the text after '='
}

// String is the DEVSPEC in command-line syntax; Parse(s.String()) == s for
// every Spec that Parse returned.
func (s Spec) String() string {
	if s.Kind == Path {
		return s.Value
	}
	return string(s.Kind) + "=" + s.Value
}

// OfPartLabel is PARTLABEL=label, the way keel's default partitions are named.
func OfPartLabel(label string) Spec { return Spec{Kind: PartLabel, Value: label} }

// Parse parses /dev/NAME, UUID=, PARTUUID=, LABEL= or PARTLABEL=. Tags are
// case-sensitive, as for the kernel, systemd and mount. Control bytes are
// refused in every kind. A PARTUUID is a GPT partition GUID
// (01234567-89ab-cdef-0123-456789abcdef) or, as the kernel's root=PARTUUID=
// takes it, an MBR disk signature and partition number in hex (0a1b2c3d-01).
func Parse(s string) (Spec, error) {
	if strings.HasPrefix(s, "/") {
		return parsePath(s)
	}
	tag, value, ok := strings.Cut(s, "=")
	if !ok {
		return Spec{}, fmt.Errorf("%q: %w", clip(s), ErrNotDevSpec)
	}
	switch k := Kind(tag); k {
	case UUID:
		return parseUUID(value)
	case PartUUID:
		return parsePartUUID(value)
	case Label, PartLabel:
		return parseLabel(k, value)
	}
	return Spec{}, fmt.Errorf("%q: unknown tag %q: %w", clip(s), clip(tag), ErrNotDevSpec)
}

func parsePath(s string) (Spec, error) {
	switch {
	case len(s) > maxPath:
		return Spec{}, fmt.Errorf("path of %d bytes, at most %d: %w", len(s), maxPath, ErrNotDevSpec)
	case hasControl(s):
		return Spec{}, fmt.Errorf("%q: path holds control characters: %w", s, ErrNotDevSpec)
	case !strings.HasPrefix(s, "/dev/") || len(s) == len("/dev/"):
		return Spec{}, fmt.Errorf("%q: a path must be /dev/NAME: %w", s, ErrNotDevSpec)
	case path.Clean(s) != s:
		return Spec{}, fmt.Errorf("%q: path is not clean (expected %q): %w", s, path.Clean(s), ErrNotDevSpec)
	}
	return Spec{Kind: Path, Value: s}, nil
}

func parseUUID(v string) (Spec, error) {
	if v == "" || len(v) > maxUUID || strings.Trim(v, "-") == "" {
		return Spec{}, fmt.Errorf("UUID=%q: expected 1 to %d hex digits and dashes: %w", clip(v), maxUUID, ErrNotDevSpec)
	}
	if i := strings.IndexFunc(v, func(c rune) bool { return !isHex(c) && c != '-' }); i >= 0 {
		c, _ := utf8.DecodeRuneInString(v[i:])
		return Spec{}, fmt.Errorf("UUID=%q: %q is not a hex digit or dash: %w", v, c, ErrNotDevSpec)
	}
	return Spec{Kind: UUID, Value: strings.ToLower(v)}, nil
}

// parsePartUUID takes the two forms the kernel gives partitions: a GPT
// GUID, or "%08x-%02x" of an MBR's disk signature and partition number.
func parsePartUUID(v string) (Spec, error) {
	lower := strings.ToLower(v)
	if !IsGUID(lower) && !hexGroups(lower, 8, 2) {
		return Spec{}, fmt.Errorf("PARTUUID=%q: expected a GPT partition GUID (01234567-89ab-cdef-0123-456789abcdef) "+
			"or an MBR disk signature and partition number (0a1b2c3d-01): %w", clip(v), ErrNotDevSpec)
	}
	if lower == "00000000-00" || lower == "00000000-0000-0000-0000-000000000000" {
		return Spec{}, fmt.Errorf("PARTUUID=%q: an all-zero id names no partition: %w", v, ErrNotDevSpec)
	}
	return Spec{Kind: PartUUID, Value: lower}, nil
}

// hexGroups reports whether s is lowercase hex digit groups of the given
// lengths, separated by single dashes.
// IsGUID reports whether s is a GUID in its text form, 8-4-4-4-12
// hexadecimal digits, any case: a GPT partition's PARTUUID.
func IsGUID(s string) bool { return hexGroups(strings.ToLower(s), 8, 4, 4, 4, 12) }

func hexGroups(s string, lens ...int) bool {
	groups := strings.Split(s, "-")
	if len(groups) != len(lens) {
		return false
	}
	for i, g := range groups {
		if len(g) != lens[i] || strings.IndexFunc(g, func(c rune) bool { return !isHex(c) || 'A' <= c && c <= 'F' }) >= 0 {
			return false
		}
	}
	return true
}

func parseLabel(k Kind, v string) (Spec, error) {
	switch {
	case v == "" || len(v) > maxLabel:
		return Spec{}, fmt.Errorf("%s=: label of %d bytes, expected 1 to %d: %w", k, len(v), maxLabel, ErrNotDevSpec)
	case !utf8.ValidString(v):
		return Spec{}, fmt.Errorf("%s=%q: label is not valid UTF-8: %w", k, v, ErrNotDevSpec)
	case hasControl(v):
		return Spec{}, fmt.Errorf("%s=%q: label holds control characters: %w", k, v, ErrNotDevSpec)
	}
	return Spec{Kind: k, Value: v}, nil
}

// hasControl reports C0 controls and DEL; in a label or path they could
// rewrite the console line that names the device.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0
}

func isHex(c rune) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// clip shortens what an error quotes: a hostile value can be kilobytes.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "…"
}
