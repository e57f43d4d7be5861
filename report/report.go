// SPDX-License-Identifier: Apache-2.0

// Package report is the boot report the init writes to /run/keel/boot.json
// and slotctl or any monitoring agent reads.
package report

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Path is where the init writes the report; /run survives switch_root.
const Path = "/run/keel/boot.json"

// Version of the report format.
const Version = 1

// Report describes one boot.
type Report struct {
	Version int `json:"version"`
	// Mode is "slot" (A/B), "single" (root= with a root hash) or "plain"
	// (root= mounted directly, no verity).
	Mode       string `json:"mode"`
	Slot       string `json:"slot,omitempty"`
	SlotReason string `json:"slot_reason,omitempty"`
	TriesLeft  *int   `json:"tries_left,omitempty"`
	// Unconfirmed counts the boots of the chosen good slot since its last
	// mark-good, this one included; Demoted names a good slot demoted in
	// this boot because too many of its boots went unconfirmed.
	Unconfirmed    int `json:"unconfirmed,omitempty"`
	MaxUnconfirmed int `json:"max_unconfirmed,omitempty"`
	// BootStateSeq is the sequence number of the boot state record this
	// boot read or wrote on the bootstate partition; 0 when it counted in
	// memory or left a blank partition unwritten (slot=). slotctl refuses
	// to take a partition that holds no valid record since for a new one.
	BootStateSeq uint64     `json:"bootstate_seq,omitempty"`
	Demoted      string     `json:"demoted,omitempty"`
	Fallbacks    []Fallback `json:"fallbacks,omitempty"`
	ImageID      string     `json:"image_id,omitempty"`
	// RollbackIndex is the booted image's (from its signed header).
	RollbackIndex uint64 `json:"rollback_index,omitempty"`
	RootHash      string `json:"root_hash,omitempty"`
	// Authenticated is true when the root hash came from a header signed by
	// a baked-in key, or from the command line (trusted as the command line
	// is); false when an unsigned header was accepted because no keys are
	// baked in.
	Authenticated bool              `json:"authenticated"`
	HashSource    string            `json:"hash_source,omitempty"` // "header", "cmdline"
	KeyID         string            `json:"key_id,omitempty"`
	Overlay       string            `json:"overlay"`
	Devices       map[string]string `json:"devices,omitempty"` // role -> device
	Data          *Data             `json:"data,omitempty"`
	EtcMerge      *EtcMerge         `json:"etc_merge,omitempty"`
	Phases        []Phase           `json:"phases"`
	Warnings      []string          `json:"warnings,omitempty"`
	// Refused lists the command-line options a locked initramfs ignored.
	Refused []Refused `json:"refused,omitempty"`
	Init    string    `json:"init"`
	// Failure is set when the boot ended in the emergency policy.
	Failure string `json:"failure,omitempty"`
	Locked  bool   `json:"locked"`
	// TrustedKeys are the ed25519 public keys baked into the initramfs
	// (base64 of their 32 bytes): slotctl install checks an image against
	// them when no --trust is given, so that it never writes over a slot
	// an image this initramfs would refuse to boot.
	TrustedKeys []string `json:"trusted_keys,omitempty"`

	// SystemDisk is the disk every default-labelled keel partition of this
	// boot came from (docs/boot-sequence.md), StrayPartitions the keel
	// labels found on other disks: named, never used.
	SystemDisk      string  `json:"system_disk,omitempty"`
	StrayPartitions []Stray `json:"stray_partitions,omitempty"`
	// LoaderPartUUID is the EFI LoaderDevicePartUUID of a UEFI boot: the
	// partition the firmware loaded systemd-boot or the unified kernel image
	// from. When set, the system disk is the disk holding it.
	LoaderPartUUID string `json:"loader_partuuid,omitempty"`

	// Watchdog is the hardware watchdog of rd.watchdog=, nil when none was
	// asked for (docs/boot-sequence.md, "Watchdog").
	Watchdog *Watchdog `json:"watchdog,omitempty"`
}

// Watchdog is the watchdog the init opened and leaves running for systemd,
// or why there is none.
type Watchdog struct {
	Device   string `json:"device,omitempty"`   // /dev/watchdog0
	Identity string `json:"identity,omitempty"` // the driver's name for it: "i6300ESB timer"
	// Timeout is the timeout in seconds the device runs with; it may differ
	// from the one asked for when the driver rounds it.
	Timeout int `json:"timeout,omitempty"`
	// None says why no watchdog runs although rd.watchdog= asked for one.
	None string `json:"none,omitempty"`
}

// Fallback is a slot that failed in the initramfs during this boot.
type Fallback struct {
	Slot   string `json:"slot"`
	Reason string `json:"reason"`
	// Class is "image fault" or "environment fault"; Retired is true when
	// the failure marked the slot bad.
	Class   string `json:"class,omitempty"`
	Retired bool   `json:"retired,omitempty"`
}

// Stray is a partition with a keel label on a disk that is not the system
// disk.
type Stray struct {
	Device string `json:"device"` // /dev/sdb2
	Label  string `json:"label"`  // root-a, verity-a, root-b, verity-b, bootstate, data
	Disk   string `json:"disk"`   // /dev/sdb
}

// Refused is a command-line option refused because the initramfs is locked
// (docs/cmdline.md): the option as written and why.
type Refused struct {
	Option string `json:"option"` // "data=/dev/sdb1"
	Reason string `json:"reason"`
}

// Phase is one step of the boot sequence and how long it took.
type Phase struct {
	Name string  `json:"name"`
	Ms   float64 `json:"ms"`
}

// AddPhase records a phase that started at start.
func (r *Report) AddPhase(name string, start time.Time) {
	r.Phases = append(r.Phases, Phase{Name: name, Ms: float64(time.Since(start).Microseconds()) / 1000})
}

// Warn records a warning.
func (r *Report) Warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// Write stores the report at path atomically.
func (r *Report) Write(path string) error {
	r.Version = Version
	b, err := r.Marshal()
	if err != nil {
		return fmt.Errorf("boot report: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("boot report: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("boot report: %w", err)
	}
	return os.Rename(tmp, path)
}

// Read loads a report.
func Read(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("boot report: %w", err)
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("boot report %s: %w", path, err)
	}
	return r, nil
}

// Data is what the init did with the data partition.
type Data struct {
	Device    string `json:"device"`
	FSType    string `json:"fstype,omitempty"`
	Encrypted bool   `json:"encrypted,omitempty"`
	// Volatile is true when the partition exists but could not be used: the
	// boot went on with tmpfs and the image's /var and /home (see Warnings).
	Volatile bool     `json:"volatile,omitempty"`
	Created  []string `json:"created,omitempty"` // subvolumes or directories made
	Seeded   bool     `json:"seeded,omitempty"`  // /var seeded from the image
	Upper    string   `json:"upper,omitempty"`   // persistent upper of this image
	// FreshUpper: first boot of this image in this slot; an older image's
	// upper is never reused.
	FreshUpper bool `json:"fresh_upper,omitempty"`
	// UpperReadOnly: Upper is a read-only lower under a tmpfs upper, because
	// the boot state could not be used in this boot (docs/data.md): what
	// this boot writes to / is not kept.
	UpperReadOnly bool     `json:"upper_read_only,omitempty"`
	Pruned        []string `json:"pruned,omitempty"` // uppers of images gone from the slot
	// SetAside: the other slot's uppers moved to its .set-aside directory
	// because the last good image booted and that slot is not good: its
	// next boot merges /etc again (docs/data.md).
	SetAside []string `json:"set_aside,omitempty"`
	Binds    []string `json:"binds,omitempty"`
}
