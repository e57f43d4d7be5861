// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// mountsUnit prints, once multi-user.target is reached, the mounts that show
// keel built the root: / on the overlay, the lower layer on dm-verity.
const mountsUnit = `[Unit]
Description=keel test: show the root's mounts
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'grep -E " (/|/run/keel/lower) " /proc/mounts | sed "s/^/KEEL-SYSTEMD: mount: /" >/dev/console; echo "KEEL-SYSTEMD: env-slot=$${slot:-unset}" >/dev/console'

[Install]
WantedBy=multi-user.target
`

var kernelTime = regexp.MustCompile(`\[\s*(\d+\.\d+)\]`)

// systemdWatchdogSeconds is TestDebianSystemdThroughKeel's rd.watchdog=:
// from keel's hand-off systemd must open the device before it expires,
// which took 10.4 s of a 20 s timeout in one CI run on a busy host.
const systemdWatchdogSeconds = "60"

// TestDebianSystemdThroughKeel boots a real Debian bookworm root (mmdebstrap,
// systemd-sysv, udev) sealed with slotctl into slot a, through keel's
// verity + overlay path, to multi-user.target, with rd.watchdog: systemd
// (RuntimeWatchdogSec=) takes over the i6300esb keel left running.
func TestDebianSystemdThroughKeel(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	root := vm.CopyTree(t, vm.DebianRoot(t))
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-mounts.service", mountsUnit)
	vm.WriteFile(t, root, "etc/systemd/system/multi-user.target.wants/.keep", "")
	run(t, "ln", "-sf", "../keel-test-mounts.service", root+"/etc/systemd/system/multi-user.target.wants/keel-test-mounts.service")
	// The watchdog hand-off (docs/boot-sequence.md, "Watchdog"): systemd
	// takes over the device keel left running.
	vm.WriteFile(t, root, "etc/systemd/system.conf.d/watchdog.conf", "[Manager]\nRuntimeWatchdogSec="+systemdWatchdogSeconds+"s\n")
	key := signingKey(t, "release")
	img := seal(t, root, key, "debian-e2e")
	disk := abDisk(t, &img, nil)
	start := time.Now()
	m := vm.Start(t, vm.Options{Initrd: initrd(t, "--trust", key+".pub"), Disks: []string{disk.Path},
		Cmdline: "slot=a rd.watchdog=" + systemdWatchdogSeconds, QEMUArgs: watchdogQEMU, Timeout: 4 * time.Minute})
	runInit := m.Expect("Run /init as init process")
	switched := m.Expect("keel: switching root to /newroot")
	m.Expect("keel: watchdog /dev/watchdog0 (i6300ESB timer) left running with a " + systemdWatchdogSeconds + " s timeout")
	// systemd opens the device keel handed over; had it not, the machine
	// would reset before multi-user.target (tens of seconds under TCG).
	m.ExpectRegexp(`systemd\[1\]: Using hardware watchdog 'i6300ESB timer'`)
	m.Expect("KEEL-SYSTEMD: multi-user reached")
	m.Expect("KEEL-SYSTEMD: env-slot=unset")
	for _, re := range []string{
		`KEEL-SYSTEMD: mount: overlay / overlay .*lowerdir=/run/keel/lower`,
		`KEEL-SYSTEMD: mount: /dev/mapper/keel-root-a /run/keel/lower squashfs ro`,
	} {
		if !regexp.MustCompile(re).MatchString(m.Output()) {
			t.Errorf("console has no line matching %q", re)
		}
	}
	t.Logf("multi-user.target reached %v after QEMU started", time.Since(start).Round(time.Second))
	if a, b := kernelSeconds(runInit), kernelSeconds(switched); a > 0 && b > a {
		t.Logf("time from Run /init to keel's exec of systemd: %.2fs", b-a)
	}
	m.Kill()
}

func kernelSeconds(line string) float64 {
	m := kernelTime.FindStringSubmatch(line)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}
