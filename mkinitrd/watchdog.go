// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strconv"
	"time"

	kargs "github.com/keel-boot/keel/kernel-args"
)

// bakeWatchdog adds rd.watchdog=SECONDS (mkinitrd --watchdog) to the baked
// command line, where the init reads it like any baked option: the real
// command line may change it, except on a locked image, which keeps it
// (docs/cmdline.md). 0 bakes nothing. A --cmdline that sets rd.watchdog=
// too is refused rather than have one silently win. The line is rewritten
// word by word (kargs.Join), which keeps its meaning.
func bakeWatchdog(cmdline string, seconds int) (string, error) {
	if seconds == 0 {
		return cmdline, nil
	}
	if seconds < 0 || time.Duration(seconds)*time.Second > kargs.MaxWatchdog {
		return "", fmt.Errorf("--watchdog %d: expected whole seconds from 1 to %d (0 for none)", seconds, int(kargs.MaxWatchdog/time.Second))
	}
	// The options the init reads end where the kernel's do, at its "--"
	// (KernelOptions): the watchdog goes at their end, and what follows,
	// the init's arguments, is kept as it is written. Split's words are
	// not the kernel's (the byte 0xA0), so a line split and joined whole
	// could move that end (found by the fuzz smoke, twice).
	opts := kargs.KernelOptions(cmdline)
	rest := cmdline[len(opts):]
	params := kargs.Split(opts)
	for _, p := range params {
		if p.Name() == "rd.watchdog" {
			return "", fmt.Errorf("--watchdog %d and --cmdline %s=%s: expected the watchdog in one of them", seconds, p.Key, p.Value)
		}
	}
	opt := kargs.Param{Key: "rd.watchdog", Value: strconv.Itoa(seconds), HasValue: true}
	// Join(Split()) keeps the meaning of the options whatever their quoting
	// (an unbalanced quote would swallow an option appended as text).
	line := kargs.Join(append(params, opt))
	if rest != "" {
		line += " " + rest
	}
	return line, nil
}
