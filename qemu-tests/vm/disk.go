// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// LinuxFilesystem is the GPT type GUID of a Linux file system partition,
// the default type of a Part.
const LinuxFilesystem = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

// Part describes one partition of a disk image made by NewDisk.
type Part struct {
	Name    string // GPT partition label (PARTLABEL)
	SizeMiB int
	UUID    string // PARTUUID; sfdisk picks a random one when empty
	Type    string // GPT type GUID; LinuxFilesystem when empty
	Content string // file written at the partition's start; none when empty
}

// Disk is a GPT disk image and where its partitions are.
type Disk struct {
	Path  string
	Parts []Partition
}

// Partition is a partition as sfdisk reports it, in bytes.
type Partition struct {
	Name   string
	UUID   string
	Type   string
	Offset int64
	Size   int64
}

// Part returns the partition labelled name, failing t when there is none.
func (d Disk) Part(t testing.TB, name string) Partition {
	t.Helper()
	for _, p := range d.Parts {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("disk %s: no partition labelled %q", d.Path, name)
	return Partition{}
}

// NewDisk creates a GPT disk image at path (a temporary file when empty)
// with sfdisk, 1 MiB aligned, and copies each part's content into it.
func NewDisk(t testing.TB, path string, parts []Part) Disk {
	t.Helper()
	return newDisk(t, path, "label: gpt\n", parts)
}

// NewDOSDisk creates an MBR (dos label) disk image whose disk signature is
// id (8 hex digits), with primary partitions of type 83 (Linux); Part.Name,
// UUID and Type are ignored, MBR has none. Each Partition's UUID is the
// kernel's PARTUUID for it: the signature and the partition number
// (0a1b2c3d-01).
func NewDOSDisk(t testing.TB, path, id string, parts []Part) Disk {
	t.Helper()
	if len(parts) > 4 {
		t.Fatalf("NewDOSDisk: %d partitions, at most 4 primaries", len(parts))
	}
	plain := make([]Part, len(parts))
	for i, p := range parts {
		plain[i] = Part{SizeMiB: p.SizeMiB, Type: "83", Content: p.Content}
	}
	return newDisk(t, path, "label: dos\nlabel-id: 0x"+id+"\n", plain)
}

func newDisk(t testing.TB, path, header string, parts []Part) Disk {
	t.Helper()
	needTool(t, "sfdisk", "fdisk")
	if path == "" {
		path = filepath.Join(t.TempDir(), "disk.img")
	}
	script, sizeMiB, err := sfdiskScript(header, parts)
	if err != nil {
		t.Fatalf("disk %s: %v", path, err)
	}
	if err := createSparse(path, int64(sizeMiB)<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := runStdin(script, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path); err != nil {
		t.Fatalf("partition %s: %v", path, err)
	}
	d := Disk{Path: path, Parts: ReadPartitions(t, path)}
	if len(d.Parts) != len(parts) {
		t.Fatalf("disk %s: sfdisk made %d partitions, want %d", path, len(d.Parts), len(parts))
	}
	for i, p := range parts {
		if p.Content != "" {
			if err := writeAt(path, d.Parts[i], p.Content); err != nil {
				t.Fatal(err)
			}
		}
	}
	return d
}

// sfdiskScript renders parts as an sfdisk script and returns the disk size:
// 1 MiB before the first partition, 1 MiB after the last for the backup GPT.
func sfdiskScript(header string, parts []Part) (string, int, error) {
	var b strings.Builder
	b.WriteString(header)
	size := 2
	for i, p := range parts {
		if p.SizeMiB < 1 {
			return "", 0, fmt.Errorf("partition %d (%q): size %d MiB, want at least 1", i+1, p.Name, p.SizeMiB)
		}
		if strings.ContainsAny(p.Name+p.UUID+p.Type, "\",\n") {
			return "", 0, fmt.Errorf("partition %d (%q): name, UUID and type must not contain quotes, commas or newlines", i+1, p.Name)
		}
		typ := p.Type
		if typ == "" {
			typ = LinuxFilesystem
		}
		fmt.Fprintf(&b, "size=%dMiB, type=%s", p.SizeMiB, typ)
		if p.Name != "" {
			fmt.Fprintf(&b, ", name=\"%s\"", p.Name)
		}
		if p.UUID != "" {
			fmt.Fprintf(&b, ", uuid=%s", p.UUID)
		}
		b.WriteString("\n")
		size += p.SizeMiB
	}
	return b.String(), size, nil
}

func createSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create disk image: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("disk image %s: size %d: %w", path, size, err)
	}
	return nil
}

// ReadPartitions returns the partitions of a GPT image, as `sfdisk --json` sees them.
func ReadPartitions(t testing.TB, path string) []Partition {
	t.Helper()
	out, err := runErr("", nil, "sfdisk", "--json", path)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := parseSfdiskJSON(out)
	if err != nil {
		t.Fatalf("disk %s: %v", path, err)
	}
	return parts
}

// sfdiskTable is the part of `sfdisk --json` output the harness reads.
type sfdiskTable struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		SectorSize int64  `json:"sectorsize"`
		Partitions []struct {
			Start int64  `json:"start"`
			Size  int64  `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func parseSfdiskJSON(b []byte) ([]Partition, error) {
	var tab sfdiskTable
	if err := json.Unmarshal(b, &tab); err != nil {
		return nil, fmt.Errorf("sfdisk --json output: %w", err)
	}
	pt := tab.PartitionTable
	if pt.Label != "gpt" && pt.Label != "dos" {
		return nil, fmt.Errorf("partition table label %q, want gpt or dos", pt.Label)
	}
	ss := pt.SectorSize
	if ss == 0 {
		ss = 512 // sfdisk omits it for 512-byte sectors in older versions
	}
	parts := make([]Partition, len(pt.Partitions))
	for i, p := range pt.Partitions {
		if p.Start < 0 || p.Size < 0 {
			return nil, fmt.Errorf("partition %d: start %d, size %d sectors: want non-negative", i+1, p.Start, p.Size)
		}
		parts[i] = Partition{Name: p.Name, UUID: p.UUID, Type: p.Type, Offset: p.Start * ss, Size: p.Size * ss}
		if pt.Label == "dos" { // primaries only, numbered in order
			parts[i].UUID = fmt.Sprintf("%s-%02x", strings.TrimPrefix(pt.ID, "0x"), i+1)
		}
	}
	return parts, nil
}

// writeAt copies the file content to the partition p of the image at path.
func writeAt(path string, p Partition, content string) error {
	src, err := os.Open(content)
	if err != nil {
		return fmt.Errorf("partition %q content: %w", p.Name, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("partition %q content: %w", p.Name, err)
	}
	if st.Size() > p.Size {
		return fmt.Errorf("partition %q: content %s is %d bytes, the partition only %d", p.Name, content, st.Size(), p.Size)
	}
	dst, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	if _, err := io.Copy(io.NewOffsetWriter(dst, p.Offset), src); err != nil {
		dst.Close()
		return fmt.Errorf("write %s to partition %q of %s: %w", content, p.Name, path, err)
	}
	return dst.Close()
}
