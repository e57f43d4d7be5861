// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"fmt"
	"strings"
	"time"
)

// A locked initramfs keeps the devices and the device wait it was built
// with: the real command line may repeat them but not change them (see
// docs/cmdline.md, "Locked initramfs", and docs/security.md for why).

// device is the setter of a DEVSPEC option (data=, bootstate=, root=,
// root-X=, verity-X=, systemd.verity_root_data=/_hash=). Unlocked, or on the
// baked line, it sets *dst as devspec does. Locked, the real command line
// may only name the baked value again (baked is the value of the config it
// is parsed over), or data=none: using no data partition runs nothing that
// is not in the signed image. Any other value, valid or not, is refused: a
// device that is not the machine's own could hold an upper layer, a boot
// state or an older signed image of the attacker's choosing.
//
// A locked initramfs's own line (mkinitrd --cmdline) may not name a device
// by its kernel name (/dev/sda2, /dev/mmcblk0p6): kernel names follow the
// order in which disks are found, so a stick or a card found first takes
// the name, and with it the boot state, the data partition or the system
// disk (the uniqueness check of baked UUIDs and labels cannot apply: a
// name always matches one device). mkinitrd --locked refuses such a line;
// an init given one ignores the option, naming it, and uses the default.
func (p *parser) device(dst *string, baked string, allowNone bool) setter {
	set := devspec(dst, allowNone)
	return func(par Param) string {
		if p.pol.locked && p.pol.trusted {
			v := *dst
			if reason := devspec(&v, allowNone)(par); reason != "" {
				return reason
			}
			if strings.HasPrefix(v, "/dev/") {
				return refusedKernelName
			}
			*dst = v
			return ""
		}
		if !p.pol.refuseUntrusted() {
			return set(par)
		}
		v := *dst
		if reason := devspec(&v, allowNone)(par); reason == "" && (v == baked || (allowNone && v == DataNone)) {
			*dst = v
			return ""
		}
		return fmt.Sprintf("%s, and the baked default is %s", refusedLocked, bakedDevice(par.Name(), baked))
	}
}

// refusedKernelName is why a locked initramfs's own line may not name a
// device by its kernel name.
const refusedKernelName = refusedLocked + ": a kernel device name follows the order disks are found in, and a second disk (a stick, a card) can take it; " +
	"name the partition by PARTUUID=, UUID=, LABEL= or PARTLABEL=, or leave the default label"

// bakedDevice names what a device option means when the command line does
// not set it: the baked DEVSPEC, or the default label (docs/cmdline.md).
func bakedDevice(name, baked string) string {
	switch {
	case baked != "":
		return baked
	case name == "root" || name == "systemd.verity_root_data":
		return "unset (A/B slots)"
	case name == "systemd.verity_root_hash":
		return "unset"
	}
	return "PARTLABEL=" + strings.ReplaceAll(name, "_", "-")
}

// timeout sets rd.timeout=. Locked, the real command line may wait longer
// than the baked value but not less: a shorter wait could make the system
// disk, or its boot-state partition, look missing, which changes the slot
// chosen (boot counting without its durable state). A longer wait only
// delays the boot.
func (p *parser) timeout(par Param) string {
	floor := uint64(1)
	if p.pol.refuseUntrusted() {
		floor = uint64(p.base.Timeout / time.Second)
	}
	d := p.cfg.Timeout
	if reason := seconds(&d, 1)(par); reason != "" {
		return reason
	}
	if uint64(d/time.Second) < floor {
		return fmt.Sprintf("%s, and the baked device wait is %d s: expected at least that", refusedLocked, floor)
	}
	p.cfg.Timeout = d
	return ""
}
