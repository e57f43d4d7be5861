// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSfdiskScript(t *testing.T) {
	script, size, err := sfdiskScript("label: gpt\n", []Part{
		{Name: "root-a", SizeMiB: 16, UUID: "11111111-2222-3333-4444-555555555555"},
		{Name: "bootstate", SizeMiB: 1, Type: "21686148-6449-6E6F-744E-656564454649"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "label: gpt\n" +
		"size=16MiB, type=" + LinuxFilesystem + ", name=\"root-a\", uuid=11111111-2222-3333-4444-555555555555\n" +
		"size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=\"bootstate\"\n"
	if script != want || size != 19 {
		t.Errorf("sfdiskScript = %q, %d MiB; want %q, 19", script, size, want)
	}
	for _, bad := range [][]Part{{{Name: "x", SizeMiB: 0}}, {{Name: `a"b`, SizeMiB: 1}}, {{Name: "a,b", SizeMiB: 1}}} {
		if _, _, err := sfdiskScript("label: gpt\n", bad); err == nil {
			t.Errorf("sfdiskScript(%+v) accepted", bad)
		}
	}
}

func TestNewDisk(t *testing.T) {
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	payload := bytes.Repeat([]byte("keel"), 300_000) // 1.2 MB: more than one MiB
	if err := os.WriteFile(content, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	const uuid = "6B65656C-0000-4000-8000-000000000001"
	d := NewDisk(t, filepath.Join(dir, "disk.img"), []Part{
		{Name: "root-a", SizeMiB: 2, UUID: uuid, Content: content},
		{Name: "data", SizeMiB: 3},
	})
	a, data := d.Part(t, "root-a"), d.Part(t, "data")
	if a.UUID != uuid || a.Size != 2<<20 || data.Size != 3<<20 || a.Offset != 1<<20 || data.Offset != 3<<20 {
		t.Errorf("partitions %+v", d.Parts)
	}
	img, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(img) != 7<<20 {
		t.Errorf("disk image is %d bytes, want 7 MiB", len(img))
	}
	if !bytes.Equal(img[a.Offset:a.Offset+int64(len(payload))], payload) {
		t.Error("root-a does not start with its content")
	}
	// The partition table survived the content write.
	if got := ReadPartitions(t, d.Path); len(got) != 2 || got[1].Name != "data" {
		t.Errorf("partitions read back: %+v", got)
	}
}

// TestNewDOSDisk: an MBR disk with the signature asked for, and the
// kernel's PARTUUIDs.
func TestNewDOSDisk(t *testing.T) {
	d := NewDOSDisk(t, "", "0a1b2c3d", []Part{{SizeMiB: 2}, {Name: "ignored", SizeMiB: 1}})
	if len(d.Parts) != 2 || d.Parts[0].UUID != "0a1b2c3d-01" || d.Parts[1].UUID != "0a1b2c3d-02" || d.Parts[1].Offset != 3<<20 || d.Parts[0].Type != "83" {
		t.Errorf("partitions %+v", d.Parts)
	}
	b, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if b[440] != 0x3d || b[443] != 0x0a || b[510] != 0x55 || b[511] != 0xaa {
		t.Errorf("MBR signature bytes % x, boot signature % x", b[440:444], b[510:512])
	}
}

func TestNewDiskRejectsOversizedContent(t *testing.T) {
	p := Partition{Name: "tiny", Offset: 0, Size: 4}
	content := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(content, []byte("too big"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := writeAt(filepath.Join(t.TempDir(), "img"), p, content)
	if err == nil || !strings.Contains(err.Error(), "7 bytes, the partition only 4") {
		t.Errorf("writeAt: %v, want a size error", err)
	}
}

func TestParseSfdiskJSON(t *testing.T) {
	good := `{"partitiontable": {"label": "gpt", "sectorsize": 4096, "partitions": [
		{"node": "d1", "start": 256, "size": 512, "type": "T", "uuid": "U", "name": "root-a"}]}}`
	parts, err := parseSfdiskJSON([]byte(good))
	want := Partition{Name: "root-a", UUID: "U", Type: "T", Offset: 256 * 4096, Size: 512 * 4096}
	if err != nil || len(parts) != 1 || parts[0] != want {
		t.Errorf("parseSfdiskJSON = %+v, %v; want %+v", parts, err, want)
	}
	for _, bad := range []string{`{`, `{"partitiontable": {"label": "sun"}}`,
		`{"partitiontable": {"label": "gpt", "partitions": [{"start": -1}]}}`} {
		if _, err := parseSfdiskJSON([]byte(bad)); err == nil {
			t.Errorf("parseSfdiskJSON(%s) accepted", bad)
		}
	}
}

func FuzzParseSfdiskJSON(f *testing.F) {
	f.Add([]byte(`{"partitiontable": {"label": "gpt", "partitions": [{"start": 2048, "size": 10}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := parseSfdiskJSON(b)
		for _, p := range parts {
			if err == nil && (p.Offset < 0 || p.Size < 0) {
				t.Errorf("partition %+v: negative offset or size accepted", p)
			}
		}
	})
}
