package unlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/anatol/luks.go"
	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/devices"
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
const DefaultDevDir = "/dev/mapper"

// Opener unlocks LUKS volumes and maps them with dm-crypt.
type Opener struct {
	Role   string // names the volume in messages ("data"); "" means the dm name
	DevDir string // where device nodes go; "" means DefaultDevDir
	Mapper Mapper // nil means the kernel, through github.com/anatol/devmapper.go
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
	d, err := readHeader(dev)
	if err != nil {
		return "", fmt.Errorf("%s (%s): %w", o.role(name), dev, err)
	}
	defer d.Close()
	what := describe(o.role(name), dev, d.Version())
	vol, err := unseal(d, key)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	devno, err := o.mapper().CreateCrypt(name, vol)
	if err != nil {
		return "", fmt.Errorf("%s: creating dm-crypt device %s (needs the dm_crypt, xts and ecb modules; the kernel log says more): %w", what, name, err)
	}
	path, err := o.node(name, devno)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, errors.Join(err, o.mapper().Remove(name)))
	}
	return path, nil
}

// Close removes the mapped device name and its node.
func (o Opener) Close(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := o.mapper().Remove(name); err != nil {
		return fmt.Errorf("dm-crypt %s: removing device: %w", name, err)
	}
	if err := os.Remove(o.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dm-crypt %s: removing node: %w", name, err)
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

func (o Opener) path(name string) string {
	dir := o.DevDir
	if dir == "" {
		dir = DefaultDevDir
	}
	return filepath.Join(dir, name)
}

// node makes the block device node for devno, or accepts one already there
// if it is the same device (udev may exist outside the initramfs).
func (o Opener) node(name string, devno uint64) (string, error) {
	path := o.path(name)
	return path, devices.BlockNode(path, devno)
}

// checkName rejects names the kernel refuses (DM_NAME_LEN) or that escape DevDir.
func checkName(name string) error {
	if name == "" || len(name) >= unix.DM_NAME_LEN || strings.ContainsAny(name, "/ \t\n") || name == "." || name == ".." {
		return fmt.Errorf("dm-crypt: device name %q must be 1-%d characters without '/' or white space", name, unix.DM_NAME_LEN-1)
	}
	return nil
}

// readHeader opens dev's LUKS2 header. luks.go indexes its JSON area
// without bounds checks, so a damaged header could panic: that becomes an
// error here, since a panic in PID 1 is a kernel panic. luks.Open also
// leaks its file when the header is bad; checking the magic and version
// first keeps that to damaged LUKS2 headers, read once per boot.
func readHeader(dev string) (d luks.Device, err error) {
	if err := checkVersion(dev); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("malformed LUKS header: %v", r)
		}
	}()
	d, err = luks.Open(dev)
	if err != nil {
		return nil, fmt.Errorf("reading LUKS header: %w", err)
	}
	return d, nil
}

func checkVersion(dev string) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	h := make([]byte, 8)
	if _, err := f.ReadAt(h, 0); err != nil {
		return fmt.Errorf("reading LUKS header: %w", err)
	}
	v, err := Version(h)
	if err == nil && v != 2 {
		// LUKS1 headers have no checksum: a damaged iteration count could
		// make unlocking run for hours instead of failing.
		err = fmt.Errorf("LUKS%d is not supported, expected LUKS2 (cryptsetup convert --type luks2 converts it)", v)
	}
	return err
}

// unseal tries key on every key slot in priority order and returns the
// volume of the first that opens. Slots that fail otherwise (an unsupported
// KDF, say) are named in the error if no slot opens.
func unseal(d luks.Device, key Key) (*luks.Volume, error) {
	slots := d.Slots()
	if len(slots) == 0 {
		return nil, fmt.Errorf("%w the %s: the header has no active key slot", ErrNoKeySlot, key.Kind)
	}
	var problems []string
	for _, s := range slots {
		v, err := unsealSlot(d, s, key.Secret)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, luks.ErrPassphraseDoesNotMatch) {
			problems = append(problems, fmt.Sprintf("key slot %d: %v", s, err))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w the %s (%s)", ErrNoKeySlot, key.Kind, strings.Join(problems, "; "))
	}
	return nil, fmt.Errorf("%w the %s", ErrNoKeySlot, key.Kind)
}

func unsealSlot(d luks.Device, slot int, secret []byte) (v *luks.Volume, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("malformed key slot: %v", r)
		}
	}()
	return d.UnsealVolume(slot, secret)
}
