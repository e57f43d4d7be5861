package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/devspec"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/kmod"
	"github.com/keel-boot/keel/mounts"
	"github.com/keel-boot/keel/report"
)

// boot is the state passed down the boot sequence: what was parsed, what was
// found, what is mounted. Nothing lives in package globals.
type boot struct {
	start time.Time
	log   *logger
	baked *bakedconf.Config
	cfg   kargs.Config
	// base is the configuration baked into the initramfs, before the
	// command line: what the builder chose, not the boot's operator.
	base  kargs.Config
	rep   *report.Report
	stack *mounts.Stack
	dev   *devices.Watcher
	// sys is the system disk, chosen once (disk.go).
	sys systemDisk
	// devDeadline bounds every device wait: rd.timeout from the moment
	// device discovery started.
	devDeadline time.Time
	// bs is the boot-counting state, loaded once (loadBootState).
	bs *bootState
	// data is the data partition, set up once (dataDone) per boot.
	data     *dataState
	dataDone bool
	// mods loads each module once, in the foreground (need) or in the
	// background (bg); bgErrs are background failures not reported yet.
	mods   *kmod.Session
	bg     sync.WaitGroup
	bgMu   sync.Mutex
	bgErrs []error
	// newRoot is set once the new root is assembled; init is the resolved
	// real init inside it.
	newRoot, init string
	// fail runs the emergency policy once, from whichever goroutine fails.
	fail failGuard
}

func (b *boot) earlyMounts() error {
	b.stack = mounts.NewStack()
	for _, m := range mounts.Early() {
		if err := b.stack.Do(m); err != nil {
			return fmt.Errorf("early mounts: %w", err)
		}
	}
	b.log.openKmsg()
	return nil
}

// loadConfig reads the baked configuration and parses /proc/cmdline once over
// its defaults.
func (b *boot) loadConfig() error {
	baked, err := bakedconf.Load(bakedconf.Path)
	if err != nil {
		// Without it we know no modules and no keys: say so, boot what we can
		// with a locked posture (no keys would mean unsigned headers pass).
		b.log.Errorf("%v: continuing with built-in defaults, locked", err)
		baked = &bakedconf.Config{Version: bakedconf.Version, Locked: true}
	}
	b.baked = baked
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read /proc/cmdline: %w", err)
	}
	base, problems := kargs.FromBaked(baked.Cmdline, baked.Locked)
	for _, p := range problems {
		b.log.Warnf("baked default %v", p)
	}
	cfg, problems := kargs.Parse(strings.TrimSpace(string(cmdline)), base, baked.Locked)
	b.commandLineProblems(problems)
	b.cfg, b.base = cfg, base
	switch cfg.LogLevel {
	case kargs.Quiet:
		b.log.setLevel(prioWarn)
	case kargs.Debug:
		b.log.setLevel(prioDebug)
	}
	b.rep.Locked = baked.Locked
	b.rep.Init = cfg.Init
	b.log.Infof("keel starting: %s", strings.TrimSpace(string(cmdline)))
	if baked.Locked {
		return lockedKernelOptions(string(cmdline))
	}
	return nil
}

// startDevices opens the uevent socket before loading modules, so that no
// disk is missed, then loads the baked module plan and replays the devices
// the kernel found before the socket was open.
func (b *boot) startDevices() error {
	w, err := devices.Start(devices.Options{OnPanic: func(r any) { b.panicked("device discovery", r) }})
	if err != nil {
		return fmt.Errorf("device discovery: %w", err)
	}
	b.dev = w
	b.devDeadline = time.Now().Add(b.cfg.Timeout)
	b.loadEager()
	if err := w.Coldplug(); err != nil {
		b.log.Warnf("coldplug: %v", err)
	}
	b.prefetchRootFS()
	return nil
}

// waitFor resolves a DEVSPEC given explicitly (command line, baked
// defaults) to a device node, on any disk, waiting for it up to rd.timeout
// from the start of the boot. Default labels go through waitForDefault.
func (b *boot) waitFor(role, spec string) (string, error) {
	s, err := devspec.Parse(spec)
	if err != nil {
		return "", fmt.Errorf("%s device %q: %w", role, spec, err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), b.devDeadline)
	defer cancel()
	path, err := b.dev.WaitFor(ctx, s)
	if err != nil {
		return "", fmt.Errorf("%s device: %w (rd.timeout=%v)", role, err, b.cfg.Timeout)
	}
	b.log.Infof("%s device %s is %s", role, spec, path)
	if role == roleRoot {
		b.noteRootDisk(path)
	}
	return path, nil
}
