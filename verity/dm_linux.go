// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/anatol/devmapper.go"

	"github.com/keel-boot/keel/dm"
)

// DefaultDevDir is where Open creates the device node, as udev would.
const DefaultDevDir = dm.DefaultDir

// DeviceMapper is the kernel's device-mapper as Open needs it; tests
// substitute a fake to exercise Open without dm-verity.
type DeviceMapper interface {
	// CreateVerity creates the read-only device name with the verity target
	// of t and returns its device number.
	CreateVerity(name, uuid string, t Target) (devno uint64, err error)
	// ReloadVerity replaces the table of device name with the verity
	// target of t.
	ReloadVerity(name string, t Target) error
	// Remove removes the device name.
	Remove(name string) error
}

// Opener creates and removes dm-verity devices.
type Opener struct {
	DevDir string       // where device nodes go; "" means DefaultDevDir
	DM     DeviceMapper // nil means the kernel, through github.com/anatol/devmapper.go
}

// Open creates the verity device of t through the default Opener.
func Open(t Target) (string, error) { return Opener{}.Open(t) }

// Close removes the verity device name through the default Opener.
func Close(name string) error { return Opener{}.Close(name) }

// Open creates the read-only dm-verity device t.Name, makes its node in
// DevDir itself (there is no udev in the initramfs) and reads the first data
// block at once: dm-verity checks lazily, so a wrong root hash would
// otherwise only fail a later mount. It returns the node's path.
//
// The first read goes through a table without options, where corruption is
// an EIO: under restart_on_corruption a wrong root hash would reboot the
// machine instead of letting the caller try the other slot. The table with
// t's options replaces it once that read succeeded.
func (o Opener) Open(t Target) (string, error) {
	if err := checkName(t.Name); err != nil {
		return "", err
	}
	if _, err := t.table(); err != nil {
		return "", err
	}
	probe := t
	probe.Options = []string{}
	devno, err := o.dm().CreateVerity(t.Name, dmUUID(t), probe)
	if err != nil {
		return "", fmt.Errorf("dm-verity %s: creating device over %s and %s: %w", t.Name, t.DataDev, t.HashDev, err)
	}
	path, err := dm.Dir(o.DevDir).MakeNode(t.Name, devno)
	if err != nil {
		err = fmt.Errorf("dm-verity %s: %w", t.Name, err)
	}
	if err == nil {
		err = readFirstBlock(path, t)
	}
	if err == nil {
		err = o.applyOptions(t, probe)
	}
	if err != nil {
		return "", errors.Join(err, o.Close(t.Name))
	}
	return path, nil
}

// applyOptions swaps in t's table when its options differ from probe's.
func (o Opener) applyOptions(t, probe Target) error {
	want, _ := t.Table()
	have, _ := probe.Table()
	if want == have {
		return nil
	}
	if err := o.dm().ReloadVerity(t.Name, t); err != nil {
		return fmt.Errorf("dm-verity %s: loading table %q: %w", t.Name, want, err)
	}
	return nil
}

// Close removes the device and then its node; a missing node is no error.
func (o Opener) Close(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := o.dm().Remove(name); err != nil {
		return fmt.Errorf("dm-verity %s: removing device: %w", name, err)
	}
	if err := dm.Dir(o.DevDir).RemoveNode(name); err != nil {
		return fmt.Errorf("dm-verity %s: %w", name, err)
	}
	return nil
}

func (o Opener) dm() DeviceMapper {
	if o.DM == nil {
		return kernelDM{}
	}
	return o.DM
}

// readFirstBlock reads data block 0 through the verity device, which makes
// the kernel check the whole path from the root hash down.
func readFirstBlock(path string, t Target) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("dm-verity %s: %w", t.Name, err)
	}
	defer f.Close()
	buf := make([]byte, t.Params.WithDefaults().DataBlockSize)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return fmt.Errorf("dm-verity %s: first read failed: root hash does not match the data (root hash %s, data %s, hash %s at byte %d): %w",
			t.Name, short(t.RootHash), t.DataDev, t.HashDev, t.HashOffset, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops the *PathError around err: the message already names the device.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return err
}

// checkName is dm.CheckName with the target in the message.
func checkName(name string) error {
	if err := dm.CheckName(name); err != nil {
		return fmt.Errorf("dm-verity: %w", err)
	}
	return nil
}

// dmUUID is the uuid cryptsetup gives verity devices, so that its tools and
// udev rules recognise ours: CRYPT-VERITY-<superblock uuid hex>-<name>.
func dmUUID(t Target) string {
	return dm.UUID("VERITY", hex.EncodeToString(t.Params.UUID[:]), t.Name)
}

// kernelDM is device-mapper through package dm. Tables are read-only:
// dm-verity refuses writable ones.
type kernelDM struct{}

func (kernelDM) CreateVerity(name, uuid string, t Target) (uint64, error) {
	vt, err := verityTable(t)
	if err != nil {
		return 0, err
	}
	return dm.Create(name, uuid, dm.ReadOnly, vt)
}

func (kernelDM) ReloadVerity(name string, t Target) error {
	vt, err := verityTable(t)
	if err != nil {
		return err
	}
	return dm.Reload(name, dm.ReadOnly, vt)
}

func (kernelDM) Remove(name string) error { return dm.Remove(name) }

// verityTable is t's table for devmapper.go, the same fields Table prints.
func verityTable(t Target) (devmapper.VerityTable, error) {
	tb, err := t.table()
	if err != nil {
		return devmapper.VerityTable{}, err
	}
	return devmapper.VerityTable{
		Length: t.Size(), HashType: 1, DataDevice: tb.dataDev, HashDevice: tb.hashDev,
		DataBlockSize: uint64(tb.dbs), HashBlockSize: uint64(tb.hbs),
		NumDataBlocks: tb.dataBlocks, HashStartBlock: tb.hashStart,
		Algorithm: tb.alg, Digest: tb.root, Salt: tb.salt, Params: tb.opts,
	}, nil
}
