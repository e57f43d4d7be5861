// SPDX-License-Identifier: Apache-2.0

package kargs

import "time"

// LogLevel is how much the init logs. The zero value is Info.
type LogLevel int

// Log levels, from the kernel's quiet and debug options.
const (
	Quiet LogLevel = iota - 1 // warnings and errors only
	Info                      // the default
	Debug                     // everything
)

func (l LogLevel) String() string {
	switch l {
	case Quiet:
		return "quiet"
	case Info:
		return "info"
	case Debug:
		return "debug"
	}
	return "unknown"
}

// Values of Config.Overlay.
const (
	OverlayAuto       = ""           // persistent when a data partition exists, else tmpfs
	OverlayTmpfs      = "tmpfs"      // changes to / vanish at reboot
	OverlayPersistent = "persistent" // upper layer on the data partition
	OverlayOff        = "off"        // the image itself, read-only, is /
)

// Values of Config.Emergency.
const (
	EmergencyShell    = "shell"
	EmergencyReboot   = "reboot"
	EmergencyPoweroff = "poweroff"
)

// DataNone in Config.Data means: use no data partition, even if one exists.
const DataNone = "none"

// Config is the boot configuration the command line selects. Device fields
// hold a DEVSPEC in canonical form (devspec.Parse(...).String()); "" means the
// default partition label of the disk layout (docs/formats.md, "Partitions").
type Config struct {
	Slot    string // "a", "b", or "" for boot counting
	Overlay string // one of the Overlay constants

	RootHash      string   // lowercase hex; "" = from the signed slot header
	Root          string   // root= / systemd.verity_root_data=: the image or plain root device
	VerityHash    string   // systemd.verity_root_hash=: the hash device of Root
	VerityOptions []string // dm-verity optional arguments, kernel spelling; exactly one corruption mode, first
	VerityOff     bool     // verity=off: mount slot images without dm-verity

	RootFSType string // rootfstype=, for a plain root
	RootFlags  string // rootflags=, mount options for a plain root

	Data      string // data=: DEVSPEC, DataNone, or "" for PARTLABEL=data if present
	BootState string // bootstate=: DEVSPEC of the boot-counting partition
	RootA     string // root-a=: slot a's image device
	RootB     string // root-b=
	VerityA   string // verity-a=: slot a's header + hash tree device
	VerityB   string // verity-b=

	Init             string        // init=: the real init inside the new root
	Break            bool          // rd.break: emergency shell just before switch_root
	Emergency        string        // rd.emergency=: one of the Emergency constants
	EmergencyTimeout time.Duration // rd.emergency.timeout=: 0 waits forever
	Timeout          time.Duration // rd.timeout=: how long to wait for devices
	LUKSTimeout      time.Duration // rd.luks.timeout=: passphrase prompt; 0 is the init's default (docs/data.md)
	Watchdog         time.Duration // rd.watchdog=: hardware watchdog timeout handed to systemd; 0 = none
	LogLevel         LogLevel      // quiet, debug, rd.debug
}

// Defaults is the configuration before any command line, baked or real.
func Defaults() Config {
	return Config{
		VerityOptions: []string{RestartOnCorruption},
		Init:          "/sbin/init",
		Emergency:     EmergencyShell,
		Timeout:       30 * time.Second,
		LogLevel:      Info,
	}
}

// PlainRoot reports whether the config asks to mount root= directly: a root
// device with neither a root hash nor a hash device, so nothing verifies it.
// The parser accepts it even when locked because the init, not the command
// line, knows whether it ends up used; a locked init must refuse to boot it.
func (c Config) PlainRoot() bool {
	return c.Root != "" && c.RootHash == "" && c.VerityHash == ""
}

// SlotRoot is the root-a=/root-b= override for slot ("a" or "b"), "" if none.
func (c Config) SlotRoot(slot string) string {
	switch slot {
	case "a":
		return c.RootA
	case "b":
		return c.RootB
	}
	return ""
}

// SlotVerity is the verity-a=/verity-b= override for slot, "" if none.
func (c Config) SlotVerity(slot string) string {
	switch slot {
	case "a":
		return c.VerityA
	case "b":
		return c.VerityB
	}
	return ""
}

// lockDown enforces what a locked initramfs guarantees whatever the base
// held: no shell, no rd.break, verity on, no weakening verity option.
func lockDown(c Config) Config {
	c.Break = false
	c.VerityOff = false
	if c.Emergency == EmergencyShell || !validEmergency(c.Emergency) {
		c.Emergency = EmergencyReboot
	}
	c.VerityOptions = strengthen(c.VerityOptions)
	return c
}
