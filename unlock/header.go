// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
)

// Magic starts every LUKS1 and LUKS2 header.
const Magic = "LUKS\xba\xbe"

// IsLUKS reports whether header, the first bytes of a device, starts with
// a LUKS header.
func IsLUKS(header []byte) bool { return bytes.HasPrefix(header, []byte(Magic)) }

// Version returns the LUKS version (1 or 2) in header.
func Version(header []byte) (int, error) {
	if len(header) < 8 || !IsLUKS(header) {
		return 0, fmt.Errorf("no LUKS header: expected %q at byte 0", Magic)
	}
	v := int(binary.BigEndian.Uint16(header[6:8]))
	if v != 1 && v != 2 {
		return 0, fmt.Errorf("LUKS header version %d, expected 1 or 2", v)
	}
	return v, nil
}

// Describe names a volume for messages and the passphrase prompt:
// "data (LUKS2 /dev/vda6)". An unreadable header gives "data (LUKS /dev/vda6)".
func Describe(role, dev string) string {
	v := 0
	if f, err := os.Open(dev); err == nil {
		h := make([]byte, 8)
		if _, err := f.ReadAt(h, 0); err == nil {
			v, _ = Version(h)
		}
		f.Close()
	}
	return describe(role, dev, v)
}

func describe(role, dev string, version int) string {
	if version == 0 {
		return fmt.Sprintf("%s (LUKS %s)", role, dev)
	}
	return fmt.Sprintf("%s (LUKS%d %s)", role, version, dev)
}
