// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/devspec"
)

// mbrScript is a DOS label with primaries, an extended partition and two
// logical partitions, with a fixed disk signature.
const mbrScript = `label: dos
label-id: 0x0a1b2c3d
size=4MiB, type=83
size=4MiB, type=82
size=4MiB, type=83
size=24MiB, type=5
size=4MiB, type=83
size=4MiB, type=83
`

// TestReadMBRLikeSfdisk: partition numbers, types and ranges are the ones
// sfdisk (libfdisk numbers them as the kernel does) reports, and the
// PARTUUIDs are its disk id and the number.
func TestReadMBRLikeSfdisk(t *testing.T) {
	img := sfdiskImage(t, t.TempDir(), mbrScript)
	parts, err := ReadMBR(openT(t, img))
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		PartitionTable struct {
			ID         string `json:"id"`
			Partitions []struct {
				Node        string `json:"node"`
				Start, Size uint64
				Type        string `json:"type"`
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(run(t, "", "sfdisk", "--json", img), &js); err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, p := range parts {
		got = append(got, fmt.Sprintf("%d %s %s %d+%d", p.Index, strings.TrimLeft(p.Type, "0"), p.UUID, p.FirstLBA, p.LastLBA-p.FirstLBA+1))
	}
	id := strings.TrimPrefix(js.PartitionTable.ID, "0x")
	for _, p := range js.PartitionTable.Partitions {
		n, _ := strconv.Atoi(strings.TrimPrefix(p.Node, img))
		want = append(want, fmt.Sprintf("%d %s %s-%02x %d+%d", n, p.Type, id, n, p.Start, p.Size))
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") || len(got) != 6 {
		t.Errorf("ReadMBR = %s\nsfdisk  = %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	// A GPT disk is read as GPT: its protective MBR is not a DOS table.
	gpt := sfdiskImage(t, t.TempDir(), "label: gpt\n size=4M, name=root-a\n")
	if _, err := ReadMBR(openT(t, gpt)); !errors.Is(err, ErrNoMBR) || !strings.Contains(err.Error(), "protective") {
		t.Errorf("ReadMBR(GPT disk) = %v, want ErrNoMBR (protective)", err)
	}
	if p, err := ReadPartitionTable(openT(t, gpt)); err != nil || len(p) != 1 || p[0].Name != "root-a" {
		t.Errorf("ReadPartitionTable(GPT disk) = %+v, %v", p, err)
	}
}

// mbrDisk synthesizes a disk: a table at sector 0 and EBRs where asked.
func mbrDisk(sig uint32, tables map[int][4]mbrEntry, sectors int) []byte {
	return mbrDiskSectors(sig, tables, sectors, 512)
}

// mbrDiskSectors is mbrDisk with sectors of size bytes.
func mbrDiskSectors(sig uint32, tables map[int][4]mbrEntry, sectors, size int) []byte {
	b := make([]byte, sectors*size)
	binary.LittleEndian.PutUint32(b[mbrSigOffset:], sig)
	for lba, es := range tables {
		s := b[lba*size:]
		for i, e := range es {
			en := s[mbrTable+i*16:]
			en[0], en[4] = e.boot, e.typ
			binary.LittleEndian.PutUint32(en[8:], e.start)
			binary.LittleEndian.PutUint32(en[12:], e.length)
		}
		s[510], s[511] = 0x55, 0xaa
	}
	return b
}

func TestReadMBRRefuses(t *testing.T) {
	linux := mbrEntry{typ: 0x83, start: 2048, length: 100}
	tests := []struct {
		name string
		disk []byte
		want string
	}{
		{"empty", make([]byte, 4096), "no MBR"},
		{"short", []byte{1, 2, 3}, "no MBR"},
		{"no partitions", mbrDisk(1, map[int][4]mbrEntry{0: {}}, 8), "MBR with no partitions"},
		{"boot code", mbrDisk(1, map[int][4]mbrEntry{0: {{boot: 0x33, typ: 0x83, start: 1, length: 1}}}, 8), "no MBR"},
		{"protective", mbrDisk(1, map[int][4]mbrEntry{0: {{typ: 0xee, start: 1, length: 100}}}, 8), "protective MBR"},
		{"loop", mbrDisk(1, map[int][4]mbrEntry{0: {{typ: 0x05, start: 4, length: 100}}, 4: {linux, {typ: 0x05, start: 0, length: 10}}}, 8), "loops"},
		{"EBR past the end", mbrDisk(1, map[int][4]mbrEntry{0: {{typ: 0x05, start: 4, length: 100}}, 4: {linux, {typ: 0x05, start: 1000, length: 10}}}, 8), "sector 1004"},
	}
	for _, tt := range tests {
		_, err := ReadMBR(bytes.NewReader(tt.disk))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: ReadMBR error %v, want %q", tt.name, err, tt.want)
		}
	}
	// A broken chain keeps what came before it.
	d := mbrDisk(0xdeadbeef, map[int][4]mbrEntry{0: {{typ: 0x05, start: 4, length: 100}}, 4: {linux, {typ: 0x05, start: 1000, length: 10}}}, 8)
	if parts, err := ReadMBR(bytes.NewReader(d)); err == nil || len(parts) != 2 || parts[1].UUID != "deadbeef-05" || parts[1].FirstLBA != 4+2048 {
		t.Errorf("broken chain: %+v, %v; want the extended partition and logical 5", parts, err)
	}
}

// TestWaitForMBRPartUUID: root=PARTUUID=SSSSSSSS-PP finds the partition of
// an MBR disk, logical ones included.
func TestWaitForMBRPartUUID(t *testing.T) {
	img := sfdiskImage(t, t.TempDir(), mbrScript)
	fs := newFakeSystem(t)
	fs.file(t, "vda", img)
	for _, n := range []string{"vda1", "vda2", "vda3", "vda4", "vda5", "vda6"} {
		fs.file(t, n, "")
	}
	fs.send(ev(t, "add", "vda", "", 0, ""))
	for _, n := range []int{1, 2, 3, 4, 5, 6} {
		fs.send(ev(t, "add", fmt.Sprintf("vda%d", n), "vda", n, ""))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := fs.reg.WaitFor(ctx, spec(t, "PARTUUID=0A1B2C3D-05"))
	if want := filepath.Join(fs.dev, "vda5"); err != nil || p != want {
		t.Fatalf("WaitFor = %q, %v; want %q", p, err, want)
	}
	// vda6 may still be on its way when vda5 is found: wait for it too.
	if _, err := fs.reg.WaitFor(ctx, spec(t, "PARTUUID=0A1B2C3D-06")); err != nil {
		t.Fatalf("WaitFor vda6: %v", err)
	}
	if d := fs.reg.Devices(); len(d) < 7 || d[6].PartUUID != "0a1b2c3d-06" {
		t.Errorf("Devices() = %+v, want the seventh with PARTUUID 0a1b2c3d-06", d)
	}
}

func FuzzMBR(f *testing.F) {
	linux := mbrEntry{typ: 0x83, start: 2048, length: 100}
	f.Add(mbrDisk(1, map[int][4]mbrEntry{0: {linux, {typ: 0x0f, start: 4, length: 100}}, 4: {linux, {typ: 0x05, start: 2, length: 10}}, 6: {linux}}, 8), false)
	f.Add(mbrDisk(7, map[int][4]mbrEntry{0: {{typ: 0x85, start: 1, length: 1}}, 1: {linux, {typ: 0x85, start: 0, length: 1}}}, 2), false)
	f.Add(mbrDiskSectors(1, map[int][4]mbrEntry{0: {linux, {typ: 0x05, start: 2, length: 10}}, 2: {linux}}, 4, 4096), true)
	f.Fuzz(func(t *testing.T, b []byte, fourK bool) {
		size := int64(512)
		if fourK {
			size = 4096 // a 4Kn disk's entries
		}
		parts, _ := readMBR(bytes.NewReader(b), size)
		seen := map[int]bool{}
		for _, p := range parts {
			if p.Index < 1 || p.Index > 255 || seen[p.Index] || p.LastLBA < p.FirstLBA {
				t.Fatalf("bad partition %+v in %+v", p, parts)
			}
			seen[p.Index] = true
			if _, err := devspec.Parse("PARTUUID=" + p.UUID); err != nil && !strings.HasPrefix(p.UUID, "00000000-") {
				t.Fatalf("partition %+v: its PARTUUID is no DEVSPEC: %v", p, err)
			}
		}
	})
}

func openT(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestReadMBRLikeTheKernel numbers logical partitions as the kernel's
// parse_extended does (block/partitions/msdos.c), where it used to differ:
// a sized entry of type 0 takes a number; every extended primary's chain
// is read, numbered on; an EBR's boot flag is not checked; an EBR's third
// or fourth entry counts only inside its region and the extended
// partition. A root=PARTUUID=SSSSSSSS-NN of a logical partition named
// another partition than the kernel's, or none.
func TestReadMBRLikeTheKernel(t *testing.T) {
	linux := mbrEntry{typ: 0x83, start: 2, length: 4}
	for _, tc := range []struct {
		name string
		disk []byte
		want string
	}{
		{"sized type 0", mbrDisk(1, map[int][4]mbrEntry{0: {{typ: 0x05, start: 8, length: 64}}, 8: {{typ: 0, start: 2, length: 2}, linux}}, 80),
			"1:05@8 5:00@10 6:83@10"},
		{"two extended primaries", mbrDisk(1, map[int][4]mbrEntry{0: {{typ: 0x05, start: 8, length: 16}, {typ: 0x0f, start: 32, length: 16}}, 8: {linux}, 32: {linux}}, 80),
			"1:05@8 2:0f@32 5:83@10 6:83@34"},
		{"EBR boot flag", mbrDisk(1, map[int][4]mbrEntry{0: {{typ: 0x05, start: 8, length: 16}}, 8: {{boot: 0x12, typ: 0x83, start: 2, length: 4}}}, 80),
			"1:05@8 5:83@10"},
		{"EBR garbage in entries 3 and 4", mbrDisk(1, map[int][4]mbrEntry{0: {{typ: 0x05, start: 8, length: 16}},
			8: {linux, {}, {typ: 0x83, start: 100, length: 4}, {typ: 0x83, start: 6, length: 4}}}, 80),
			"1:05@8 5:83@10 6:83@14"},
	} {
		parts, err := ReadMBR(bytes.NewReader(tc.disk))
		var got []string
		for _, p := range parts {
			got = append(got, fmt.Sprintf("%d:%s@%d", p.Index, p.Type, p.FirstLBA))
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("%s: %s, %v; want %s", tc.name, strings.Join(got, " "), err, tc.want)
		}
	}
}

// TestReadMBR4KnDisk: on a disk of 4 KiB logical sectors the entries count
// 4 KiB sectors, and the chain of logical partitions is read there, as the
// kernel reads it. Read in 512-byte units, the EBR at sector 8 was looked
// for at byte 4096 and partition 5 was not found.
func TestReadMBR4KnDisk(t *testing.T) {
	linux := mbrEntry{typ: 0x83, start: 2, length: 4}
	disk := mbrDiskSectors(0x0a1b2c3d, map[int][4]mbrEntry{0: {{typ: 0x83, start: 1, length: 4}, {typ: 0x05, start: 8, length: 16}}, 8: {linux}}, 32, 4096)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	old := logicalBlockSize
	t.Cleanup(func() { logicalBlockSize = old })
	for _, tc := range []struct {
		bs   int64
		err  error
		want string
	}{
		{4096, nil, "1:83@1 2:05@8 5:83@10 0a1b2c3d-05"},
		{0, errors.New("inappropriate ioctl for device"), "1:83@1 2:05@8"}, // a file: 512-byte sectors, no EBR at byte 4096
		{3000, nil, "1:83@1 2:05@8"},                                       // no disk has it: 512
	} {
		logicalBlockSize = func(*os.File) (int64, error) { return tc.bs, tc.err }
		parts, err := ReadMBR(openT(t, img))
		var got []string
		for _, p := range parts {
			got = append(got, fmt.Sprintf("%d:%s@%d", p.Index, p.Type, p.FirstLBA))
		}
		if len(parts) > 2 {
			got = append(got, parts[2].UUID)
		}
		if g := strings.Join(got, " "); g != tc.want || (tc.bs == 4096) != (err == nil) {
			t.Errorf("block size %d: %s, %v; want %s", tc.bs, g, err, tc.want)
		}
	}
}

// TestReadMBRLoop4Kn: a DOS table that sfdisk wrote through a loop device
// of 4 KiB sectors reads, through the device, as sfdisk reports it.
func TestReadMBRLoop4Kn(t *testing.T) {
	needRoot(t)
	needTool(t, "losetup")
	needTool(t, "sfdisk")
	img := sparseFile(t, t.TempDir(), "disk.img", 64<<20)
	out, err := execOutput("losetup", "--sector-size", "4096", "--find", "--show", img)
	if err != nil {
		t.Skipf("no loop device of 4 KiB sectors: %v", err)
	}
	dev := strings.TrimSpace(out)
	t.Cleanup(func() { _, _ = execOutput("losetup", "--detach", dev) })
	run(t, mbrScript, "sfdisk", "--quiet", "--no-reread", dev)
	var js struct {
		PartitionTable struct {
			SectorSize int `json:"sectorsize"`
			Partitions []struct {
				Node        string `json:"node"`
				Start, Size uint64
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(run(t, "", "sfdisk", "--json", dev), &js); err != nil {
		t.Fatal(err)
	}
	if js.PartitionTable.SectorSize != 4096 {
		t.Skipf("sfdisk sees %d-byte sectors on %s", js.PartitionTable.SectorSize, dev)
	}
	var want []string
	for _, p := range js.PartitionTable.Partitions {
		want = append(want, fmt.Sprintf("%s %d+%d", strings.TrimPrefix(p.Node, dev), p.Start, p.Size))
	}
	parts, err := ReadMBR(openT(t, dev))
	var got []string
	for _, p := range parts {
		got = append(got, fmt.Sprintf("p%d %d+%d", p.Index, p.FirstLBA, p.LastLBA-p.FirstLBA+1))
	}
	if err != nil || strings.Join(got, ", ") != strings.Join(want, ", ") || len(got) != 6 {
		t.Errorf("ReadMBR(%s) = %s, %v\nsfdisk = %s", dev, strings.Join(got, ", "), err, strings.Join(want, ", "))
	}
}
