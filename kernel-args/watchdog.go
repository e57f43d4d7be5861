// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"fmt"
	"strconv"
	"time"
)

// MaxWatchdog bounds rd.watchdog=: an hour. Hardware watchdogs reach a few
// minutes to about half an hour (i6300esb: 2046 s); a longer value is a
// typo, and the driver refuses what it cannot do anyway.
const MaxWatchdog = 3600 * time.Second

// watchdog sets rd.watchdog=SECONDS; 0, off (or another false spelling)
// turns it off. Locked, the real command line may only repeat the baked
// value: turning it off would let a hang past the initramfs sit forever
// instead of costing the slot a try, and turning one on or shortening it
// would let whoever edits the command line reset boots that would have
// succeeded, spending the new image's tries until the older slot boots
// (docs/security.md).
func (p *parser) watchdog(par Param) string {
	d, reason := parseWatchdog(par)
	switch {
	case reason != "":
		return reason
	case d != p.cfg.Watchdog && p.pol.refuseUntrusted():
		return fmt.Sprintf("%s, and the baked watchdog is %s", refusedLocked, WatchdogString(p.base.Watchdog))
	}
	p.cfg.Watchdog = d
	return ""
}

// parseWatchdog reads the value of rd.watchdog=.
func parseWatchdog(par Param) (time.Duration, string) {
	const expected = "expected whole seconds from 1 to 3600, or 0 or off for no watchdog"
	if n, err := strconv.ParseUint(par.Value, 10, 32); err == nil {
		if time.Duration(n)*time.Second > MaxWatchdog {
			return 0, expected
		}
		return time.Duration(n) * time.Second, ""
	}
	if on, ok := parseBool(par); ok && !on && par.HasValue {
		return 0, ""
	}
	return 0, expected
}

// WatchdogString is d as rd.watchdog= spells it in messages: "off" or
// "N s".
func WatchdogString(d time.Duration) string {
	if d <= 0 {
		return "off"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + " s"
}
