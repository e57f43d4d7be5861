package kargs

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// DevSpec kinds.
const (
	KindPath      = "path"      // /dev/NAME
	KindUUID      = "UUID"      // filesystem (or LUKS) UUID
	KindPartUUID  = "PARTUUID"  // GPT partition GUID (or MBR disk id-partition)
	KindLabel     = "LABEL"     // filesystem label
	KindPartLabel = "PARTLABEL" // GPT partition name
)

// ErrNotDevSpec is wrapped by every ParseDevSpec error.
var ErrNotDevSpec = errors.New("not a DEVSPEC (expected /dev/NAME, UUID=, PARTUUID=, LABEL= or PARTLABEL=)")

// Limits that keep a hostile command line from producing absurd values; real
// labels are far shorter (ext4 16 bytes, GPT 36 UTF-16 units, btrfs 255).
const (
	maxPath  = 4096
	maxLabel = 255
	maxUUID  = 64
)

// DevSpec names a block device the way fstab and the kernel's root= do.
type DevSpec struct {
	Kind  string // one of the Kind constants
	Value string // the path for KindPath, else the text after '='
}

// String is the DEVSPEC in command-line syntax.
func (d DevSpec) String() string {
	if d.Kind == KindPath {
		return d.Value
	}
	return d.Kind + "=" + d.Value
}

// ParseDevSpec parses /dev/NAME, UUID=, PARTUUID=, LABEL= or PARTLABEL=.
// UUIDs and PARTUUIDs are lowercased: blkid prints some (vfat, MBR ids) in
// upper case, so whoever matches them must compare case-insensitively. Tags
// are case-sensitive, as for the kernel, systemd and mount.
func ParseDevSpec(s string) (DevSpec, error) {
	if strings.HasPrefix(s, "/") {
		return parseDevPath(s)
	}
	tag, value, ok := strings.Cut(s, "=")
	if !ok {
		return DevSpec{}, fmt.Errorf("%q: %w", s, ErrNotDevSpec)
	}
	switch tag {
	case KindUUID, KindPartUUID:
		return parseUUID(tag, value)
	case KindLabel, KindPartLabel:
		return parseLabel(tag, value)
	}
	return DevSpec{}, fmt.Errorf("%q: unknown tag %q: %w", s, tag, ErrNotDevSpec)
}

func parseDevPath(s string) (DevSpec, error) {
	switch {
	case !strings.HasPrefix(s, "/dev/") || len(s) == len("/dev/"):
		return DevSpec{}, fmt.Errorf("%q: a path must be /dev/NAME: %w", s, ErrNotDevSpec)
	case len(s) > maxPath:
		return DevSpec{}, fmt.Errorf("path of %d bytes, at most %d: %w", len(s), maxPath, ErrNotDevSpec)
	case path.Clean(s) != s:
		return DevSpec{}, fmt.Errorf("%q: path is not clean (expected %q): %w", s, path.Clean(s), ErrNotDevSpec)
	case hasControl(s):
		return DevSpec{}, fmt.Errorf("%q: path holds control characters: %w", s, ErrNotDevSpec)
	}
	return DevSpec{Kind: KindPath, Value: s}, nil
}

func parseUUID(tag, v string) (DevSpec, error) {
	if v == "" || len(v) > maxUUID || strings.Trim(v, "-") == "" {
		return DevSpec{}, fmt.Errorf("%s=%q: expected 1 to %d hex digits and dashes: %w", tag, v, maxUUID, ErrNotDevSpec)
	}
	for i := 0; i < len(v); i++ {
		if !isHex(v[i]) && v[i] != '-' {
			return DevSpec{}, fmt.Errorf("%s=%q: %q is not a hex digit or dash: %w", tag, v, v[i], ErrNotDevSpec)
		}
	}
	return DevSpec{Kind: tag, Value: strings.ToLower(v)}, nil
}

func parseLabel(tag, v string) (DevSpec, error) {
	switch {
	case v == "" || len(v) > maxLabel:
		return DevSpec{}, fmt.Errorf("%s=: label of %d bytes, expected 1 to %d: %w", tag, len(v), maxLabel, ErrNotDevSpec)
	case !utf8.ValidString(v):
		return DevSpec{}, fmt.Errorf("%s=%q: label is not valid UTF-8: %w", tag, v, ErrNotDevSpec)
	case hasControl(v):
		return DevSpec{}, fmt.Errorf("%s=%q: label holds control characters: %w", tag, v, ErrNotDevSpec)
	}
	return DevSpec{Kind: tag, Value: v}, nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
