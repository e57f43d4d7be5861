// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sysDev is a block device of a fake sysfs: a disk (parent "") or a
// partition, with its uevent lines and extra attribute files.
type sysDev struct {
	name, parent string
	uevent       string            // KEY=VALUE lines; MAJOR/MINOR/DEVNAME/DEVTYPE are added
	major, minor int               // device number
	files        map[string]string // attribute files below the device: "size", "dm/name"
	slaves       []string          // dm devices: the devices under it
}

// fakeSysfs lays out devices the way sysfs does: the device directories
// under devices/virtual/block (partitions inside their disk's directory)
// and class/block/NAME as relative symlinks to them.
func fakeSysfs(t testing.TB, devs ...sysDev) string {
	t.Helper()
	sys := t.TempDir()
	for _, d := range devs {
		rel := filepath.Join("devices/virtual/block", d.parent, d.name)
		dir := filepath.Join(sys, rel)
		typ := "disk"
		if d.parent != "" {
			typ = "partition"
		}
		files := map[string]string{"uevent": "MAJOR=" + itoa(d.major) + "\nMINOR=" + itoa(d.minor) + "\nDEVNAME=" + d.name + "\nDEVTYPE=" + typ + "\n" + d.uevent}
		for k, v := range d.files {
			files[k] = v
		}
		for name, body := range files {
			writeFile(t, filepath.Join(dir, name), body)
		}
		for _, s := range d.slaves {
			if err := os.MkdirAll(filepath.Join(dir, "slaves"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../../"+s, filepath.Join(dir, "slaves", s)); err != nil {
				t.Fatal(err)
			}
		}
		link := filepath.Join(sys, "class/block", d.name)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("../..", rel), link); err != nil {
			t.Fatal(err)
		}
	}
	return sys
}

func writeFile(t testing.TB, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestScanBlock(t *testing.T) {
	sys := fakeSysfs(t,
		sysDev{name: "vda", major: 254, files: map[string]string{"size": "131072\n"}},
		sysDev{name: "vda1", parent: "vda", major: 254, minor: 1, uevent: "PARTN=1\nPARTNAME=root-a\n", files: map[string]string{"size": "2048\n", "partition": "1\n"}},
		sysDev{name: "nvme0n1p2", parent: "nvme0n1", major: 259, minor: 2, uevent: "PARTN=2\n"},
		sysDev{name: "dm-0", major: 253, files: map[string]string{"dm/name": "keel-root-a\n"}, slaves: []string{"vda2", "vda1"}},
	)
	bs, err := ScanBlock(sys)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bs {
		got = append(got, strings.Join([]string{b.Name, b.DevType, b.Parent(), b.PartName, itoa(int(b.Major)) + ":" + itoa(int(b.Minor)),
			itoa(int(b.Sectors + 1)), b.DMName, strings.Join(b.Slaves, "+")}, "|"))
	}
	want := []string{
		"dm-0|disk|||253:0|0|keel-root-a|vda1+vda2",
		"nvme0n1p2|partition|nvme0n1||259:2|0||",
		"vda|disk|||254:0|131073||",
		"vda1|partition|vda|root-a|254:1|2049||",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ScanBlock =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := ScanBlock(t.TempDir()); err == nil || !strings.Contains(err.Error(), "class/block") {
		t.Errorf("ScanBlock without class/block: %v", err)
	}
}

func TestParseUeventFile(t *testing.T) {
	ev, err := ParseUeventFile([]byte("MAJOR=8\nMINOR=17\nDEVNAME=sdb1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=data\n"), "/devices/pci/block/sdb/sdb1")
	if err != nil || ev.DevName != "sdb1" || ev.Parent() != "sdb" || ev.Major != 8 || ev.Minor != 17 || ev.PartN != 1 || ev.PartName != "data" || ev.Subsystem != "block" {
		t.Errorf("ParseUeventFile = %+v, %v", ev, err)
	}
	for _, bad := range []string{"MAJOR\n", "=x\n", "MAJOR=x\n", "DEVNAME=../etc\n", "PARTN=-1\n"} {
		if _, err := ParseUeventFile([]byte(bad), "/devices/x/block/vda"); err == nil {
			t.Errorf("ParseUeventFile(%q): no error", bad)
		}
	}
}

func FuzzParseUeventFile(f *testing.F) {
	f.Add([]byte("MAJOR=8\nMINOR=17\nDEVNAME=sdb1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=data\n"))
	f.Add([]byte("DEVNAME=a/b\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseUeventFile(b, "/devices/virtual/block/vda/vda1")
		if err != nil {
			return
		}
		if ev.DevName == "" || !validDevName(ev.DevName) || ev.Subsystem != "block" {
			t.Fatalf("ParseUeventFile(%q) = %+v: a name that is no /dev path", b, ev)
		}
	})
}
