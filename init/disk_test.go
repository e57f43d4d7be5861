// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keel-boot/keel/devices"
	"github.com/keel-boot/keel/report"
)

// TestStraysNamedOnce: each stray is named on the console at warning level
// (so quiet shows it) and in the report, once, however often the strays
// are listed (at the choice and again when the report is written).
func TestStraysNamedOnce(t *testing.T) {
	var out bytes.Buffer
	b := &boot{log: newLogger(&out), rep: &report.Report{}}
	b.log.setLevel(prioWarn) // quiet
	b.setSystemDisk(devices.SystemDisk{Disk: "vdb", Strays: []devices.DiskPart{{Disk: "vda", Part: "vda1", Label: "root-a"}}})
	b.strays([]devices.DiskPart{{Disk: "vda", Part: "vda1", Label: "root-a"}, {Disk: "sda", Part: "sda3", Label: "data"}})
	want := []report.Stray{{Device: "/dev/vda1", Label: "root-a", Disk: "/dev/vda"}, {Device: "/dev/sda3", Label: "data", Disk: "/dev/sda"}}
	if len(b.rep.StrayPartitions) != 2 || b.rep.StrayPartitions[0] != want[0] || b.rep.StrayPartitions[1] != want[1] || b.rep.SystemDisk != "/dev/vdb" {
		t.Errorf("report: system disk %q, strays %+v; want /dev/vdb, %+v", b.rep.SystemDisk, b.rep.StrayPartitions, want)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || lines[0] != "keel: ignoring /dev/vda1 (PARTLABEL=root-a): it is on /dev/vda, not on the system disk /dev/vdb" ||
		!strings.Contains(lines[1], "/dev/sda3 (PARTLABEL=data)") {
		t.Errorf("console:\n%s", out.String())
	}
}
