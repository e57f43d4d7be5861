// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Names of the top-level subvolumes (btrfs) or directories (ext4).
const (
	Var     = "@var"
	Home    = "@home"
	Overlay = "@overlay"
)

// MaxImageID is the longest image id the slot header can hold.
const MaxImageID = 64

// UpperDir is the directory on the data partition mounted at dataRoot that
// holds upper/ and work/ of the persistent overlay for imageID booted from
// slot: dataRoot/@overlay/SLOT/ENCODED-ID. A new image in a slot therefore
// starts with a fresh upper, and an old upper never shadows a new image.
func UpperDir(dataRoot, slot, imageID string) (string, error) {
	if err := checkSlot(slot); err != nil {
		return "", err
	}
	name, err := EncodeImageID(imageID)
	if err != nil {
		return "", err
	}
	return filepath.Join(dataRoot, Overlay, slot, name), nil
}

// checkSlot accepts slot names that are one safe path component: a, b, or
// a name of [a-z0-9_-] such as "single" for a system without slots.
func checkSlot(slot string) error {
	ok := slot != "" && len(slot) <= 32
	for _, c := range []byte(slot) {
		ok = ok && (c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-')
	}
	if !ok {
		return fmt.Errorf("overlay slot name %q: expected 1-32 characters of a-z, 0-9, '_' or '-'", slot)
	}
	return nil
}

// verbatim reports whether c stands for itself in an encoded image id.
// Everything else, notably '/', '%', '\', ',' and ':' (overlayfs option
// separators) and a leading '.', is written as %XX.
func verbatim(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '.':
		return !first // no ".", ".." or hidden names
	}
	return strings.IndexByte("-_+=@~", c) >= 0
}

// EncodeImageID turns an image id (1-64 bytes of printable ASCII without
// spaces, as the slot header allows) into a single directory name. The
// encoding is injective, so two ids never share an upper, and at most
// 192 bytes long, below NAME_MAX.
func EncodeImageID(id string) (string, error) {
	if id == "" || len(id) > MaxImageID {
		return "", fmt.Errorf("image id %q: expected 1-%d bytes", id, MaxImageID)
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x21 || c > 0x7e {
			return "", fmt.Errorf("image id %q: byte %d is %#02x, expected printable ASCII without spaces", id, i, c)
		}
		if verbatim(c, i == 0) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String(), nil
}

// DecodeImageID reverses EncodeImageID. It accepts only the one encoding
// EncodeImageID produces, so a directory it did not name (lost+found, a
// temporary directory, anything a user put there) is never taken for an
// upper.
func DecodeImageID(name string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(name) {
			return "", fmt.Errorf("directory %q: truncated %%XX escape", name)
		}
		v, err := strconv.ParseUint(name[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("directory %q: bad %%XX escape at byte %d", name, i)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	id := b.String()
	if enc, err := EncodeImageID(id); err != nil || enc != name {
		return "", fmt.Errorf("directory %q is not an encoded image id", name)
	}
	return id, nil
}

// EtcMergeFile is the record of the /etc merge that made an upper, next to
// its upper/ and work/ (docs/data.md): slotctl status shows its conflicts.
const EtcMergeFile = "etc-merge.json"
