// SPDX-License-Identifier: Apache-2.0

package dm

import (
	"errors"
	"fmt"

	"github.com/anatol/devmapper.go"
)

// ReadOnly is the table flag dm-verity needs ("Device must be readonly").
const ReadOnly = devmapper.ReadOnlyFlag

// Create creates device name with uuid, loads tables with flags, activates
// it and returns its device number. A failure after the device exists
// removes it again; a name already in use is refused without touching the
// device that holds it.
func Create(name, uuid string, flags uint32, tables ...devmapper.Table) (uint64, error) {
	// Not devmapper.CreateAndLoad: it leaves the device behind when
	// resuming fails.
	if err := devmapper.Create(name, uuid); err != nil {
		if _, ierr := devmapper.InfoByName(name); ierr == nil {
			return 0, fmt.Errorf("device-mapper name %s is already in use", name)
		}
		return 0, err
	}
	devno, err := loadAndResume(name, flags, tables)
	if err != nil {
		return 0, errors.Join(err, devmapper.Remove(name))
	}
	return devno, nil
}

func loadAndResume(name string, flags uint32, tables []devmapper.Table) (uint64, error) {
	if err := devmapper.Load(name, flags, tables...); err != nil {
		return 0, fmt.Errorf("loading table: %w", err)
	}
	if err := devmapper.Resume(name); err != nil {
		return 0, fmt.Errorf("resuming: %w", err)
	}
	info, err := devmapper.InfoByName(name)
	if err != nil {
		return 0, err
	}
	return info.DevNo, nil
}

// Reload replaces the table of the live device name: the new table goes
// into the inactive slot and suspending and resuming makes it live.
func Reload(name string, flags uint32, tables ...devmapper.Table) error {
	if err := devmapper.Load(name, flags, tables...); err != nil {
		return fmt.Errorf("loading table: %w", err)
	}
	if err := devmapper.Suspend(name); err != nil {
		return fmt.Errorf("suspending: %w", err)
	}
	if err := devmapper.Resume(name); err != nil {
		return fmt.Errorf("resuming: %w", err)
	}
	return nil
}

// Remove removes device name.
func Remove(name string) error { return devmapper.Remove(name) }
