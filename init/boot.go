// SPDX-License-Identifier: Apache-2.0

package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/devices"
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
	// configured is set once the config phase parsed cfg (emergencyConfig).
	configured atomic.Bool
	// shellHeld is set once the emergency shell (or its wait for Enter)
	// holds the console: the watchdog's lease is a human's from then on.
	shellHeld atomic.Bool
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
	// dataAside is the data partition a slot attempt went volatile
	// without (inAttempt): still mounted, given back to the next slot's
	// attempt (reclaimData) and unmounted once the root is chosen
	// (settleData). A fault in one slot's image must not keep the
	// partition out of the other slot's boot.
	dataAside *dataState
	inAttempt bool
	// mods loads each module once, in the foreground (need) or in the
	// background (bg); bgErrs are background failures not reported yet.
	mods *kmod.Session
	// storageLoaded is closed once the storage drivers are loaded;
	// storageLive once their inits have returned (loadEager).
	storageLoaded <-chan struct{}
	// explicitDevs are the explicit DEVSPECs a locked boot used
	// (uniqueDevice), checked again when the report is written.
	explicitDevs []explicitDev
	storageLive  *liveSet
	// sysfs is opened once the early-mounts phase mounted /sys, which the
	// choice of the storage drivers reads (loadStorage); nil: mounted.
	sysfs *sysfsGate
	// storageEv carries the uevent reader's news of devices to
	// loadStorage, and the boot's stop (storageEvents).
	storageEv *storageEvents
	// readModaliases replaces the read of /sys in tests (modaliases).
	readModaliases func() []string
	// cmdline is /proc/cmdline as early-mounts read it (nil: not read).
	cmdline []byte
	// fsPrefetch is what startFSPrefetch started, once.
	fsPrefetch *prefetched
	// stopDataPrefetch ends the wait for the data partition's module
	// (prefetchData) when the data phase is over.
	stopDataPrefetch func()
	bg               sync.WaitGroup
	// prog is the boot's last progress (progress.go).
	prog   progressState
	bgMu   sync.Mutex
	bgErrs []error
	// newRoot is set once the new root is assembled; init is the resolved
	// real init inside it.
	newRoot, init string
	// apiAt is where /dev, /proc, /sys and /run move in newRoot
	// (mounts.ResolveAPIFilesystems, resolved by assemble).
	apiAt map[string]string
	// shutdownCopy is the init binary's copy to /run/initramfs, started
	// by stageShutdown (shutdown.go).
	shutdownCopy *stagedCopy
	// wd is the watchdog of rd.watchdog=, nil without one (watchdog.go).
	wd *watchdogState
	// fail runs the emergency policy once, from whichever goroutine fails.
	fail failGuard
	// repSnap is the report as the boot sequence left it at the end of its
	// last phase; repMu orders the writes of boot.json, and repFailed says
	// a failure's report was written (report.go).
	repSnap   atomic.Pointer[[]byte]
	repMu     sync.Mutex
	repFailed bool
	// freezeWhy, when set, is why this boot's persistent upper is mounted
	// read-only (freezeUpper): another slot's trial upper could not be set
	// aside (setAsideTrials).
	freezeWhy string
}
