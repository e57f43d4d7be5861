// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/qemu-tests/vm"
	keelreport "github.com/keel-boot/keel/report"
)

// healthUnit is an image's health check: it passes when /etc/keel-test-health
// says ok. Required by boot-complete.target and ordered before it, as
// keel-mark-good.service documents for image builders.
const healthUnit = `[Unit]
Description=keel test: health check before boot-complete.target
Before=boot-complete.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'h=$$(cat /etc/keel-test-health); echo "KEEL-SYSTEMD: health $$h" >/dev/console; test "$$h" = ok'

[Install]
RequiredBy=boot-complete.target
`

// reportUnit prints, once keel-mark-good.service is done or given up,
// whether it ran, the boot report and slotctl status as the running system
// sees it (partitions found by label inside the guest).
const reportUnit = `[Unit]
Description=keel test: report boot assessment
After=multi-user.target keel-mark-good.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "KEEL-SYSTEMD: mark-good $$(systemctl is-active keel-mark-good.service)" >/dev/console; sed "s/^/KEEL-SYSTEMD: boot.json /" /run/keel/boot.json >/dev/console; /usr/bin/slotctl status 2>&1 | sed "s/^/KEEL-SYSTEMD: status: /" >/dev/console; echo "KEEL-SYSTEMD: report done" >/dev/console'

[Install]
WantedBy=multi-user.target
`

// enableUnit links unit into dir/etc/systemd/system/TARGET.wants (or .requires).
func enableUnit(t testing.TB, dir, unit, wants string) {
	t.Helper()
	vm.WriteFile(t, dir, "etc/systemd/system/"+wants+"/.keep", "")
	run(t, "ln", "-sf", "../"+unit, filepath.Join(dir, "etc/systemd/system", wants, unit))
}

// rollbackRoot is the Debian root with slotctl, keel-mark-good.service
// enabled, the health check and the report unit.
func rollbackRoot(t testing.TB) string {
	t.Helper()
	root := vm.CopyTree(t, vm.DebianRoot(t))
	vm.Install(t, keelTools(t).slotctl, root, "usr/bin/slotctl")
	mod, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	vm.Install(t, filepath.Join(mod, "systemd", "keel-mark-good.service"), root, "etc/systemd/system/keel-mark-good.service")
	run(t, "chmod", "0644", filepath.Join(root, "etc/systemd/system/keel-mark-good.service"))
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-health.service", healthUnit)
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-report.service", reportUnit)
	enableUnit(t, root, "keel-mark-good.service", "multi-user.target.wants")
	enableUnit(t, root, "keel-test-report.service", "multi-user.target.wants")
	enableUnit(t, root, "keel-test-health.service", "boot-complete.target.requires")
	return root
}

// systemdBoot is what one boot through systemd showed.
type systemdBoot struct {
	health, markGood string
	report           keelreport.Report
}

// bootSystemd boots the disk to the report unit's last line and cuts the
// power, which the boot state must survive like any other cut.
func bootSystemd(t *testing.T, initrd, disk string) systemdBoot {
	t.Helper()
	start := time.Now()
	m := vm.Start(t, vm.Options{Initrd: initrd, Disks: []string{disk}, Timeout: 4 * time.Minute})
	var b systemdBoot
	b.health = m.ExpectRegexp(`KEEL-SYSTEMD: health (\S+)$`)[1]
	b.markGood = m.ExpectRegexp(`KEEL-SYSTEMD: mark-good (\S+)$`)[1]
	js := m.ExpectRegexp(`KEEL-SYSTEMD: boot.json (\{.*\})$`)[1]
	m.Expect("KEEL-SYSTEMD: report done")
	m.Kill()
	if err := json.Unmarshal([]byte(js), &b.report); err != nil {
		t.Fatalf("boot.json printed by the guest: %v\n%s", err, js)
	}
	for _, l := range strings.Split(m.Output(), "\n") {
		if strings.Contains(l, "KEEL-SYSTEMD: status: ") {
			t.Log(strings.TrimSpace(l[strings.Index(l, "status: ")+8:]))
		}
	}
	if out := m.Output(); strings.Contains(out, "status: slotctl status:") || strings.Contains(out, "status: slot a header:") || strings.Contains(out, "status: slot b header:") {
		t.Errorf("slotctl status in the guest failed to read a partition (see the status lines above); console log %s", m.LogPath())
	}
	t.Logf("slot %s booted through systemd: health %s, mark-good %s, %v", b.report.Slot, b.health, b.markGood, time.Since(start).Round(time.Second))
	return b
}

// TestRollbackSystemd: a real Debian systemd root in both slots, with a
// health check before boot-complete.target that fails in image b. a is
// confirmed by keel-mark-good.service; b, put on trial, fails its health
// check, is never marked good, and the next boot rolls back to a.
func TestRollbackSystemd(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	root := rollbackRoot(t)
	vm.WriteFile(t, root, "etc/keel-test-health", "ok")
	a := seal(t, root, key, "debian-a")
	vm.WriteFile(t, root, "etc/keel-test-health", "broken")
	b := seal(t, root, key, "debian-b")
	disk := abDisk(t, &a, &b).Path
	rd := initrd(t, "--trust", key+".pub")

	boot := bootSystemd(t, rd, disk)
	if boot.report.Slot != "a" || boot.health != "ok" || boot.markGood != "active" {
		t.Fatalf("first boot: slot %s, health %s, mark-good %s: want a, ok, active", boot.report.Slot, boot.health, boot.markGood)
	}
	if a := diskStatus(t, disk).slot(t, "a"); !a.Good {
		t.Fatalf("after the first boot: a is %+v: want good (keel-mark-good.service ran)", a)
	}

	slotctlDisk(t, disk, "set-next", "b", "--tries", "1")
	boot = bootSystemd(t, rd, disk)
	if boot.report.Slot != "b" || boot.health != "broken" || boot.markGood != "inactive" {
		t.Fatalf("trial boot: slot %s, health %s, mark-good %s: want b, broken, inactive (never started)", boot.report.Slot, boot.health, boot.markGood)
	}
	if b := diskStatus(t, disk).slot(t, "b"); b.Good || b.Tries != 0 {
		t.Fatalf("after the trial boot: b is %+v: want not good, no tries left", b)
	}

	boot = bootSystemd(t, rd, disk)
	if boot.report.Slot != "a" || boot.health != "ok" || !strings.Contains(boot.report.SlotReason, bootstate.ReasonTriesExhausted) {
		t.Errorf("rollback boot: slot %s (%q), health %s: want a because b's tries are exhausted, ok", boot.report.Slot, boot.report.SlotReason, boot.health)
	}
	s := diskStatus(t, disk)
	if b := s.slot(t, "b"); b.Priority != 0 || b.Bootable || b.Reason != bootstate.ReasonTriesExhausted {
		t.Errorf("after rollback: b is %+v: want retired, %q", b, bootstate.ReasonTriesExhausted)
	}
	if a := s.slot(t, "a"); !a.Good || !a.Bootable {
		t.Errorf("after rollback: a is %+v: want good and bootable", a)
	}
}
