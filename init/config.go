// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
)

// loadConfig reads the baked configuration and parses /proc/cmdline once over
// its defaults.
func (b *boot) loadConfig() error {
	baked, err := b.baked, error(nil)
	if baked == nil { // not read by startModules (early.go)
		baked, err = bakedconf.Load(bakedconf.Path)
	}
	if err != nil {
		// Without it we know no modules and no keys: say so, boot what we can
		// with a locked posture (no keys would mean unsigned headers pass).
		b.log.Errorf("%v: continuing with built-in defaults, locked", err)
		baked = &bakedconf.Config{Version: bakedconf.Version, Locked: true}
	}
	b.baked = baked
	cmdline := b.cmdline // read in early-mounts (earlyFSPrefetch)
	if cmdline == nil {
		if cmdline, err = os.ReadFile("/proc/cmdline"); err != nil {
			return fmt.Errorf("read /proc/cmdline: %w", err)
		}
	}
	base, problems := kargs.FromBaked(baked.Cmdline, baked.Locked)
	for _, p := range problems {
		b.log.Warnf("baked default %v", p)
	}
	cfg, problems := kargs.Parse(strings.TrimSpace(string(cmdline)), base, baked.Locked)
	b.commandLineProblems(problems)
	b.cfg, b.base = cfg, base
	b.configured.Store(true)
	switch cfg.LogLevel {
	case kargs.Quiet:
		b.log.setLevel(prioWarn)
	case kargs.Debug:
		b.log.setLevel(prioDebug)
	}
	b.rep.Locked = baked.Locked
	for _, k := range baked.TrustedKeys {
		b.rep.TrustedKeys = append(b.rep.TrustedKeys, base64.StdEncoding.EncodeToString(k))
	}
	b.rep.Init = cfg.Init
	b.log.Infof("keel starting: %s", strings.TrimSpace(string(cmdline)))
	b.setPanicTimeout(string(cmdline), emergencyPolicy(cfg.Emergency, baked.Locked))
	if baked.Locked {
		return lockedKernelOptions(string(cmdline), baked.Cmdline)
	}
	return nil
}
