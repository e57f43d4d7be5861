package unlock

import (
	"errors"
	"fmt"

	"github.com/anatol/devmapper.go"
	"github.com/anatol/luks.go"
)

// Mapper creates and removes dm-crypt devices; tests substitute a fake to
// exercise Open where the host kernel has no device-mapper.
type Mapper interface {
	// CreateCrypt maps the unsealed volume v as device name and returns
	// its device number.
	CreateCrypt(name string, v *luks.Volume) (devno uint64, err error)
	// Remove removes the device name.
	Remove(name string) error
}

// kernelMapper is dm-crypt through devmapper.go's ioctls.
type kernelMapper struct{}

func (kernelMapper) CreateCrypt(name string, v *luks.Volume) (uint64, error) {
	// Refuse a name in use: cleaning up after a failure below must never
	// remove somebody else's device.
	if _, err := devmapper.InfoByName(name); err == nil {
		return 0, fmt.Errorf("device-mapper name %s is already in use", name)
	}
	// The volume key is private to luks.go, so its SetupMapper builds the
	// table. It removes the device when loading the table fails, not when
	// resuming does.
	if err := v.SetupMapper(name); err != nil {
		_ = devmapper.Remove(name)
		return 0, err
	}
	info, err := devmapper.InfoByName(name)
	if err != nil {
		return 0, errors.Join(err, devmapper.Remove(name))
	}
	return info.DevNo, nil
}

func (kernelMapper) Remove(name string) error { return devmapper.Remove(name) }
