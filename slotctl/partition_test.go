package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot lays out /sys/class/block/NAME/uevent files and /dev nodes.
func fakeRoot(t *testing.T, uevents map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range uevents {
		dir := filepath.Join(root, "sys/class/block", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "uevent"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindByLabel(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		"vda":  "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
		"vda1": "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=root-a\n",
		"vda5": "DEVTYPE=partition\nPARTNAME=bootstate\n",
		"vdb1": "DEVNAME=vdb1\nPARTNAME=root-b\n",
		"sda1": "DEVNAME=sda1\nPARTNAME=root-b\n",
	})
	tests := []struct {
		label, want, wantErr string
	}{
		{"root-a", filepath.Join(root, "dev/vda1"), ""},
		{"bootstate", filepath.Join(root, "dev/vda5"), ""}, // no DEVNAME: the sysfs name
		{"verity-a", "", "no partition with that GPT label"},
		{"root-b", "", "2 partitions carry that GPT label (" + filepath.Join(root, "dev/sda1") + ", " + filepath.Join(root, "dev/vdb1") + ")"},
	}
	for _, tt := range tests {
		got, err := findByLabel(root, tt.label)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("findByLabel(%q) = %q, %v; want %q, %q", tt.label, got, err, tt.want, tt.wantErr)
		}
	}
	if _, err := findByLabel(root, "verity-a"); !errors.Is(err, errNotFound) {
		t.Errorf("missing label: %v, want errNotFound", err)
	}
	// udev's link wins over the scan.
	link := filepath.Join(root, "dev/disk/by-partlabel/root-b")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(link, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := findByLabel(root, "root-b"); got != link || err != nil {
		t.Errorf("with a by-partlabel link: %q, %v", got, err)
	}
	if _, err := findByLabel(t.TempDir(), "root-a"); err == nil || !strings.Contains(err.Error(), "sys/class/block") {
		t.Errorf("without /sys: %v", err)
	}
}

func TestPartitionBounds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("0123456789abcdef"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &partition{label: "root-a", path: path, f: f, off: 4, size: 8}
	defer p.Close()
	b := make([]byte, 6)
	if n, err := p.ReadAt(b, 4); n != 4 || err != io.EOF || string(b[:n]) != "89ab" {
		t.Errorf("read across the end: %d %q, %v", n, b[:n], err)
	}
	if n, err := p.ReadAt(b, 8); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
	if _, err := p.WriteAt([]byte("xyz"), 6); err == nil || !strings.Contains(err.Error(), "root-a: write of 3 bytes at byte 6 past the end of the partition (8 bytes)") {
		t.Errorf("write across the end: %v", err)
	}
	if n, err := p.WriteAt([]byte("XY"), 6); n != 2 || err != nil {
		t.Fatalf("write at the end: %d, %v", n, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "0123456789XYcdef" {
		t.Errorf("file after writes: %q", got)
	}
	if err := p.dropCache(8); err != nil {
		t.Errorf("dropCache: %v", err)
	}
}

func TestOpenInDisk(t *testing.T) {
	disk := makeDisk(t, t.TempDir(), "1MiB")
	p, err := openInDisk(disk, "bootstate", false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// sfdisk aligns to 1 MiB: root-a, verity-a, root-b, verity-b, bootstate.
	if p.off != 5<<20 || p.size != 1<<20 {
		t.Errorf("bootstate at %d, %d bytes; want %d, %d", p.off, p.size, 5<<20, 1<<20)
	}
	if _, err := openInDisk(disk, "data", false); err == nil || !strings.Contains(err.Error(), "no partition labelled data in the GPT") {
		t.Errorf("missing partition: %v", err)
	}
	if _, err := openInDisk(filepath.Join(t.TempDir(), "nope"), "data", false); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing disk: %v", err)
	}
}
