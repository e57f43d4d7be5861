// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"fmt"
	"strings"

	"github.com/anatol/devmapper.go"

	"github.com/keel-boot/keel/dm"
)

// Volume is an unlocked LUKS2 volume: what dm-crypt needs to map it.
type Volume struct {
	Device     string   // the backing device, holding header and data
	UUID       string   // the LUKS UUID from the header
	Cipher     string   // dm-crypt's cipher specification: "aes-xts-plain64"
	Key        []byte   // the volume key; Open zeroes it once the Mapper returns
	Offset     uint64   // where the data starts on Device, in bytes
	Size       uint64   // bytes of data
	IVTweak    uint64   // added to the sector number for the IV, in 512-byte sectors
	SectorSize uint64   // dm-crypt's encryption sector size in bytes
	Flags      []string // dm-crypt optional parameters: "allow_discards", ...
}

// Mapper creates and removes dm-crypt devices; tests substitute a fake to
// exercise Open where the host kernel has no device-mapper.
type Mapper interface {
	// CreateCrypt maps the unlocked volume v as device name and returns
	// its device number. v.Key is zeroed after it returns.
	CreateCrypt(name string, v *Volume) (devno uint64, err error)
	// Remove removes the device name.
	Remove(name string) error
}

// kernelMapper is dm-crypt through package dm.
type kernelMapper struct{}

func (kernelMapper) CreateCrypt(name string, v *Volume) (uint64, error) {
	table := devmapper.CryptTable{
		Length:        v.Size,
		BackendDevice: v.Device,
		BackendOffset: v.Offset,
		Encryption:    v.Cipher,
		Key:           v.Key,
		IVTweak:       v.IVTweak,
		Flags:         v.Flags,
		SectorSize:    v.SectorSize,
	}
	return dm.Create(name, dmUUID(v.UUID, name), 0, table)
}

// dmUUID is the device-mapper UUID cryptsetup gives a LUKS2 device:
// CRYPT-LUKS2-<the UUID's hex digits>-<name>.
func dmUUID(luksUUID, name string) string {
	hex := strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F' {
			return r
		}
		return -1
	}, luksUUID)
	return dm.UUID("LUKS2", hex, name)
}

func (kernelMapper) Remove(name string) error { return dm.Remove(name) }

// checkName is dm.CheckName with the target in the message.
func checkName(name string) error {
	if err := dm.CheckName(name); err != nil {
		return fmt.Errorf("dm-crypt: %w", err)
	}
	return nil
}
