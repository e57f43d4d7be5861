// SPDX-License-Identifier: Apache-2.0

// Package efivar reads the one EFI variable keel uses: LoaderDevicePartUUID,
// the PARTUUID of the partition the boot loader or systemd-stub was loaded
// from, which the firmware chose (docs/boot-sequence.md, "The system disk").
// It reads efivarfs files; mounting efivarfs is the init's.
package efivar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"github.com/keel-boot/keel/devspec"
)

// Dir is where efivarfs is mounted.
const Dir = "/sys/firmware/efi/efivars"

// LoaderGUID is the vendor GUID of the Boot Loader Interface's variables
// (systemd-boot, systemd-stub).
const LoaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// LoaderDevicePartUUIDName is the variable's file name under efivarfs.
const LoaderDevicePartUUIDName = "LoaderDevicePartUUID-" + LoaderGUID

// maxSize bounds what is read: the value is 36 UTF-16 characters and a
// NUL after the 4 bytes of attributes; anything much larger is not it.
const maxSize = 256

// ReadLoaderDevicePartUUID reads LoaderDevicePartUUID from the efivarfs
// mounted at dir. It returns "" and nil when the variable does not exist
// (a boot loader that does not set it, a BIOS boot).
func ReadLoaderDevicePartUUID(dir string) (string, error) {
	p := filepath.Join(dir, LoaderDevicePartUUIDName)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	v, err := ParseLoaderDevicePartUUID(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return v, nil
}

// NonVolatile is EFI_VARIABLE_NON_VOLATILE, the attribute of a variable
// kept in the firmware's flash across boots.
const NonVolatile = 0x1

// ParseLoaderDevicePartUUID decodes an efivarfs file of
// LoaderDevicePartUUID: 4 bytes of attributes, then the GUID as UTF-16LE
// text (36 characters, any case), optionally NUL-terminated. It returns
// the GUID in lower case.
//
// A variable kept across boots (NonVolatile) is refused: systemd-boot and
// systemd-stub set it anew at every boot, volatile, and only when it is
// not set already, so one in the firmware's flash was written by something
// else (root in a running system, once) and would choose the system disk
// at every boot after, whatever the firmware loaded the kernel from.
func ParseLoaderDevicePartUUID(b []byte) (string, error) {
	if len(b) > maxSize {
		return "", fmt.Errorf("LoaderDevicePartUUID of more than %d bytes: expected 4 bytes of attributes and a GUID in UTF-16", maxSize)
	}
	if len(b) < 4 || (len(b)-4)%2 != 0 {
		return "", fmt.Errorf("LoaderDevicePartUUID of %d bytes: expected 4 bytes of attributes and a GUID in UTF-16 (an even number of bytes)", len(b))
	}
	if attrs := binary.LittleEndian.Uint32(b); attrs&NonVolatile != 0 {
		return "", fmt.Errorf("LoaderDevicePartUUID is kept in the firmware's flash across boots (attributes %#x): systemd-boot and systemd-stub set it for one boot, so this one was written by something else and is not followed (remove it: chattr -i and rm its file under %s)", attrs, Dir)
	}
	u := make([]uint16, 0, (len(b)-4)/2)
	for i := 4; i+1 < len(b); i += 2 {
		u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
	}
	for len(u) > 0 && u[len(u)-1] == 0 {
		u = u[:len(u)-1]
	}
	s := string(utf16.Decode(u))
	if !devspec.IsGUID(s) {
		return "", fmt.Errorf("LoaderDevicePartUUID %q: expected a GUID (8-4-4-4-12 hexadecimal digits)", s)
	}
	return strings.ToLower(s), nil
}
