// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"path"
	"slices"
	"strings"
)

// DeviceBuses are the buses whose devices the init reads the modaliases of
// (/sys/bus/NAME/devices/*/modalias) to choose the storage drivers it
// loads (docs/boot-sequence.md, "Storage drivers by device"), and whose
// devices added later it matches by their uevents' MODALIAS. Most of each
// bus's devices are known at a moment the init can tell: PCI's when the
// kernel starts init (it enumerates the bus before), virtio's once the
// transport driver's load returned (virtio_pci probes synchronously),
// SCSI's once the host adapters' loads returned (their scans run as the
// kernel's async work, which a driver's load waits for).
var DeviceBuses = []string{"pci", "virtio", "scsi"}

// DeviceAliases returns patterns (a module's aliases from modules.alias)
// when the module is driven by devices on DeviceBuses alone: its aliases
// of the form BUS:…, but nil when it has one on another bus (usb:, acpi*:,
// of:, platform:, vmbus:), whose devices the init does not read. Aliases
// that name no device ("block-major-8-*", "fs-btrfs", "crypto-sha256",
// "devname:…") are left out: they do not decide.
func DeviceAliases(patterns []string) []string {
	var out []string
	for _, p := range patterns {
		bus, _, ok := strings.Cut(p, ":")
		if !ok || bus == "devname" {
			continue
		}
		if !slices.Contains(DeviceBuses, bus) {
			return nil
		}
		out = append(out, p)
	}
	return out
}

// MatchModalias reports whether a device's modalias (the content of its
// sysfs modalias file) matches one of patterns, as modprobe matches it:
// both normalized ("-" is "_" outside brackets), then fnmatch ("[!…]"
// negates, as "[^…]" does for Go's path.Match). A malformed pattern
// matches nothing.
func MatchModalias(patterns []string, modalias string) bool {
	modalias = normalizeAlias(modalias)
	for _, p := range patterns {
		p = strings.ReplaceAll(normalizeAlias(p), "[!", "[^") // fnmatch's negation, in Go's spelling
		lit := p
		if i := strings.IndexAny(p, "*?[\\"); i >= 0 {
			lit = p[:i]
		}
		if !strings.HasPrefix(modalias, lit) {
			continue
		}
		if ok, err := path.Match(p, modalias); err == nil && ok {
			return true
		}
	}
	return false
}
