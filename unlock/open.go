// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/keel-boot/keel/dm"
)

// ErrNoKeySlot is wrapped by every error for a key that opens no key slot.
var ErrNoKeySlot = errors.New("no key slot matches")

// Kinds of key, as messages name them.
const (
	KeyFile    = "key file"
	Passphrase = "passphrase"
)

// Key is a secret that may open a key slot: a key file's whole content
// (as cryptsetup uses it, trailing newline included) or a typed passphrase.
type Key struct {
	Secret []byte
	Kind   string // KeyFile or Passphrase
}

// DefaultDevDir is where Open makes the device node, as udev would.
const DefaultDevDir = dm.DefaultDir

// Opener unlocks LUKS volumes and maps them with dm-crypt.
type Opener struct {
	Role   string // names the volume in messages ("data"); "" means the dm name
	DevDir string // where device nodes go; "" means DefaultDevDir
	Mapper Mapper // nil means the kernel, through github.com/anatol/devmapper.go
	// Budget bounds the key derivation of every Open through this Opener
	// (share one per boot); nil is unbounded.
	Budget *KDFBudget
	// NoDiscards leaves out the header's allow-discards flag (a locked
	// machine): the passphrase does not authenticate the header, and
	// whoever holds the disk could turn TRIM on, which shows which blocks
	// the file system uses. The other flags only tune performance.
	NoDiscards bool
}

// Open unlocks the LUKS volume on dev with key through the default Opener
// and maps it as /dev/mapper/NAME.
func Open(dev, name string, key Key) (string, error) {
	return Opener{}.Open(dev, name, key)
}

// Open reads the LUKS2 header of dev, recovers the volume key with key from
// the first key slot it opens, maps the volume as device name and makes
// its node in DevDir. It returns the node's path.
func (o Opener) Open(dev, name string, key Key) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	vol, version, err := unlockDevice(dev, key, o.Budget)
	what := describe(o.role(name), dev, version)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if o.NoDiscards {
		vol.Flags = slices.DeleteFunc(slices.Clone(vol.Flags), func(f string) bool { return f == "allow_discards" })
	}
	devno, err := o.mapper().CreateCrypt(name, vol)
	clear(vol.Key)
	if err != nil {
		return "", fmt.Errorf("%s: creating dm-crypt device %s (needs the dm_crypt, xts and ecb modules; the kernel log says more): %w", what, name, err)
	}
	path, err := dm.Dir(o.DevDir).MakeNode(name, devno)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, errors.Join(err, o.mapper().Remove(name)))
	}
	return path, nil
}

// Check recovers the volume key of the LUKS volume on dev with key, checks
// it against the header's digest and discards it, mapping nothing: what
// `cryptsetup open --test-passphrase` does. Its errors read as Open's.
func (o Opener) Check(dev string, key Key) error {
	vol, version, err := unlockDevice(dev, key, o.Budget)
	if err != nil {
		return fmt.Errorf("%s: %w", describe(o.role("volume"), dev, version), err)
	}
	clear(vol.Key)
	return nil
}

// unlockDevice reads the header of dev and recovers its volume with key.
// It returns the LUKS version for messages: 2 once a LUKS2 header is read.
func unlockDevice(dev string, key Key, budget *KDFBudget) (*Volume, int, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	// Seeking to the end gives the size of block devices and files alike.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, fmt.Errorf("finding the size of the device: %w", err)
	}
	h, err := readLUKS2(f, size)
	if err != nil {
		return nil, 0, err
	}
	vol, err := unlockVolumeWithin(f, size, h, key, budget)
	if err != nil {
		return nil, 2, err
	}
	vol.Device = dev
	return vol, 2, nil
}

// Close removes the mapped device name and its node.
func (o Opener) Close(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := o.mapper().Remove(name); err != nil {
		return fmt.Errorf("dm-crypt %s: removing device: %w", name, err)
	}
	if err := dm.Dir(o.DevDir).RemoveNode(name); err != nil {
		return fmt.Errorf("dm-crypt %s: %w", name, err)
	}
	return nil
}

func (o Opener) role(name string) string {
	if o.Role == "" {
		return name
	}
	return o.Role
}

func (o Opener) mapper() Mapper {
	if o.Mapper == nil {
		return kernelMapper{}
	}
	return o.Mapper
}

// unlockVolume tries key on every key slot of h in priority order and
// returns the volume of the first that opens. Slots that fail otherwise
// (an unsupported KDF, say) are named in the error if no slot opens.
func unlockVolume(r io.ReaderAt, size int64, h *header, key Key) (*Volume, error) {
	return unlockVolumeWithin(r, size, h, key, nil)
}

// unlockVolumeWithin is unlockVolume charging key derivation to budget: a
// spent budget stops it at once with an ErrKDFBudget error.
func unlockVolumeWithin(r io.ReaderAt, size int64, h *header, key Key, budget *KDFBudget) (*Volume, error) {
	m := h.meta
	seg := m.segment
	vol := &Volume{
		UUID:       h.uuid,
		Cipher:     seg.cipher,
		Offset:     seg.offset,
		Size:       seg.size,
		IVTweak:    seg.ivTweak,
		SectorSize: seg.sectorSize,
		Flags:      m.flags,
	}
	if seg.offset > uint64(size) || seg.size > uint64(size)-seg.offset {
		return nil, fmt.Errorf("segments.%d: %d bytes of data at byte %d go past the end of the device (%d bytes)", seg.id, seg.size, seg.offset, size)
	}
	if seg.dynamic {
		vol.Size = uint64(size) - seg.offset
		vol.Size -= vol.Size % seg.sectorSize
		if vol.Size == 0 {
			return nil, fmt.Errorf("segments.%d: no data: the device (%d bytes) ends within a sector of the data offset %d", seg.id, size, seg.offset)
		}
	}
	if len(m.keyslots) == 0 {
		return nil, fmt.Errorf("%w the %s: the header has no active key slot", ErrNoKeySlot, key.Kind)
	}
	var problems []string
	for _, k := range m.keyslots {
		vk, err := openKeyslot(r, size, m, k, key.Secret, budget)
		if err == nil {
			vol.Key = vk
			return vol, nil
		}
		if errors.Is(err, ErrKDFBudget) {
			return nil, err
		}
		if err != errWrongKey {
			problems = append(problems, fmt.Sprintf("key slot %d: %v", k.id, err))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w the %s (%s)", ErrNoKeySlot, key.Kind, strings.Join(problems, "; "))
	}
	return nil, fmt.Errorf("%w the %s", ErrNoKeySlot, key.Kind)
}
