// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	// Aliased: devspec is the name of this file's DEVSPEC option setter.
	dspec "github.com/keel-boot/keel/devspec"
)

// maxSeconds bounds rd.timeout= and rd.emergency.timeout= (one week): larger
// values are typos, and the init turns timeouts into 32-bit milliseconds.
const maxSeconds = 7 * 24 * 60 * 60

// setter applies one option to the config and returns why it refused it, or
// "" when it took it.
type setter func(Param) string

// setter maps an option name (as Param.Name gives it) to its setter, nil for
// options keel does not own.
func (p *parser) setter(name string) setter {
	c := &p.cfg
	switch name {
	case "slot":
		return p.slot
	case "overlay":
		return p.overlay
	case "systemd.volatile":
		return p.volatile
	case "roothash":
		return p.rootHash
	case "root", "systemd.verity_root_data":
		return p.device(&c.Root, p.base.Root, false)
	case "systemd.verity_root_hash":
		return p.device(&c.VerityHash, p.base.VerityHash, false)
	case "systemd.verity_root_options":
		return p.verityOptions
	case "verity", "systemd.verity":
		return p.verity
	case "rootfstype":
		return p.rootFSType
	case "rootflags":
		return p.rootFlags
	case "data":
		return p.device(&c.Data, p.base.Data, true)
	case "bootstate":
		return p.device(&c.BootState, p.base.BootState, false)
	case "root_a":
		return p.device(&c.RootA, p.base.RootA, false)
	case "root_b":
		return p.device(&c.RootB, p.base.RootB, false)
	case "verity_a":
		return p.device(&c.VerityA, p.base.VerityA, false)
	case "verity_b":
		return p.device(&c.VerityB, p.base.VerityB, false)
	case "init":
		return p.init
	case "rd.break":
		return p.rdBreak
	case "rd.emergency":
		return p.emergency
	case "rd.emergency.timeout":
		return seconds(&c.EmergencyTimeout, 0)
	case "rd.timeout":
		return p.timeout
	case "rd.luks.timeout":
		return seconds(&c.LUKSTimeout, 0)
	case "rd.watchdog":
		return p.watchdog
	case "quiet":
		return logLevel(&c.LogLevel, Quiet)
	case "debug", "rd.debug":
		return logLevel(&c.LogLevel, Debug)
	}
	return nil
}

func (p *parser) slot(par Param) string {
	if !par.HasValue {
		return "expected a value: a, b or auto"
	}
	switch v := strings.ToLower(par.Value); v {
	case "a", "b":
		p.cfg.Slot = v
	case "auto", "":
		p.cfg.Slot = ""
	default:
		return "expected a, b (any case) or auto"
	}
	return ""
}

func (p *parser) overlay(par Param) string {
	switch par.Value {
	case OverlayTmpfs, OverlayPersistent, OverlayOff:
		p.cfg.Overlay = par.Value
	case "auto", "":
		if !par.HasValue {
			return "expected a value: tmpfs, persistent, off or auto"
		}
		p.cfg.Overlay = OverlayAuto
	default:
		return "expected tmpfs, persistent, off or auto"
	}
	return ""
}

// volatile takes systemd.volatile=overlay, the only value that means the
// same for keel as for systemd; the others are systemd's own business.
func (p *parser) volatile(par Param) string {
	if par.Value == "overlay" {
		p.cfg.Overlay = OverlayTmpfs
	}
	return ""
}

func (p *parser) rootHash(par Param) string {
	v := par.Value
	switch {
	case par.HasValue && strings.EqualFold(v, p.cfg.RootHash):
		return ""
	case p.pol.refuseUntrusted():
		return refusedLocked + " (an untrusted root hash)"
	case !par.HasValue:
		return "expected a value: 32 to 128 hex digits"
	}
	if v != "" {
		if reason := checkRootHash(v); reason != "" {
			return reason
		}
	}
	p.cfg.RootHash = strings.ToLower(v)
	return ""
}

func checkRootHash(v string) string {
	if len(v) < 32 || len(v) > 128 || len(v)%2 != 0 {
		return fmt.Sprintf("%d hex digits, expected an even number from 32 to 128 (64 for sha256)", len(v))
	}
	for i := 0; i < len(v); i++ {
		if !isHex(v[i]) {
			return fmt.Sprintf("%q at offset %d is not a hex digit", v[i], i)
		}
	}
	return ""
}

// devspec sets *dst to a canonical DEVSPEC; an empty value restores the
// default label, and allowNone admits data=none.
func devspec(dst *string, allowNone bool) setter {
	return func(par Param) string {
		switch {
		case !par.HasValue:
			return "expected a value: a DEVSPEC"
		case par.Value == "":
			*dst = ""
			return ""
		case allowNone && par.Value == DataNone:
			*dst = DataNone
			return ""
		}
		d, err := dspec.Parse(par.Value)
		if err != nil {
			return err.Error()
		}
		*dst = d.String()
		return ""
	}
}

func (p *parser) verityOptions(par Param) string {
	if !par.HasValue {
		return "expected a value: a comma-separated list of dm-verity options"
	}
	opts, named, reason := parseVerityOptions(par.Value, p.pol.locked)
	if reason != "" {
		return reason
	}
	// Locked, panic (which the builder baked, or an earlier word asked
	// for) is not lowered to restart: a value naming restart, or none
	// (the default restores restart), is refused; one naming no mode keeps
	// panic. The command line could undo the builder's stricter choice
	// (found by a hunting helper).
	if p.pol.locked && len(p.cfg.VerityOptions) > 0 && p.cfg.VerityOptions[0] == PanicOnCorruption && opts[0] != PanicOnCorruption {
		if named || strings.Trim(par.Value, ",") == "" {
			return fmt.Sprintf("%s (this initramfs panics on corruption: restart-on-corruption is weaker)", refusedLocked)
		}
		opts[0] = PanicOnCorruption
	}
	p.cfg.VerityOptions = opts
	return ""
}

// verity takes verity=on|off and systemd.verity=BOOL, any boolean spelling.
func (p *parser) verity(par Param) string {
	on, ok := parseBool(par)
	switch {
	case !ok:
		return "expected on or off (or another boolean: 1/0, yes/no, true/false)"
	case !on && p.pol.locked:
		return refusedLocked
	}
	p.cfg.VerityOff = !on
	return ""
}

func (p *parser) rootFSType(par Param) string {
	switch {
	case !par.HasValue:
		return "expected a value: a filesystem type"
	case !isFSType(par.Value):
		return "expected a filesystem type such as ext4 or btrfs"
	}
	p.cfg.RootFSType = par.Value
	return ""
}

// isFSType accepts the names /proc/filesystems lists (ext4, fuse.sshfs, 9p);
// "" restores probing.
func isFSType(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z') && !('0' <= c && c <= '9') && c != '.' && c != '_' {
			return false
		}
	}
	return len(v) <= 64
}

func (p *parser) rootFlags(par Param) string {
	switch {
	case !par.HasValue:
		return "expected a value: mount options"
	case hasControl(par.Value):
		return "expected mount options, found control characters"
	}
	p.cfg.RootFlags = par.Value
	return ""
}

// init refuses a new init= on a locked initramfs: init=/bin/sh is a root
// shell without a password, however well verity protects the image.
func (p *parser) init(par Param) string {
	switch {
	case !par.HasValue || !strings.HasPrefix(par.Value, "/"):
		return "expected an absolute path"
	case hasControl(par.Value):
		return "expected a path, found control characters"
	case par.Value == p.cfg.Init:
		return ""
	case p.pol.refuseUntrusted():
		return refusedLocked
	}
	p.cfg.Init = par.Value
	return ""
}

func (p *parser) rdBreak(par Param) string {
	on, ok := parseBool(par)
	switch {
	case !ok:
		return "expected no value, or a boolean (1/0, yes/no, true/false)"
	case on && p.pol.locked:
		return refusedLocked
	}
	p.cfg.Break = on
	return ""
}

func (p *parser) emergency(par Param) string {
	switch {
	case !validEmergency(par.Value):
		return "expected shell, reboot or poweroff"
	case par.Value == EmergencyShell && p.pol.locked:
		return refusedLocked
	}
	p.cfg.Emergency = par.Value
	return ""
}

func validEmergency(v string) bool {
	return v == EmergencyShell || v == EmergencyReboot || v == EmergencyPoweroff
}

// seconds sets *dst from a whole number of seconds, at least min.
func seconds(dst *time.Duration, min uint64) setter {
	return func(par Param) string {
		n, err := strconv.ParseUint(par.Value, 10, 32)
		if err != nil || n < min || n > maxSeconds {
			return fmt.Sprintf("expected whole seconds from %d to %d", min, maxSeconds)
		}
		*dst = time.Duration(n) * time.Second
		return ""
	}
}

// logLevel sets *dst to level for a bare flag or a true value, and back to
// Info for a false one (debug=0 undoes a baked debug).
func logLevel(dst *LogLevel, level LogLevel) setter {
	return func(par Param) string {
		on, ok := parseBool(par)
		switch {
		case !ok:
			return "expected no value, or a boolean (1/0, yes/no, true/false)"
		case on:
			*dst = level
		case *dst == level:
			*dst = Info
		}
		return ""
	}
}

// parseBool reads a flag the way systemd's parse_boolean does; a bare flag is
// true.
func parseBool(par Param) (value, ok bool) {
	if !par.HasValue {
		return true, true
	}
	switch strings.ToLower(par.Value) {
	case "1", "yes", "y", "true", "t", "on":
		return true, true
	case "0", "no", "n", "false", "f", "off":
		return false, true
	}
	return false, false
}
