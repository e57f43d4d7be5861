// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keel-boot/keel/devspec"
)

const (
	linuxFS = "0fc63daf-8483-4772-8e79-3d69d8477de4"
	uuidA   = "8f0d2a1c-3b4e-4c5d-9e6f-708192a3b4c5"
	uuidB   = "01234567-89ab-cdef-0123-456789abcdef"
)

// sfdiskJSON is the part of `sfdisk --json` the test compares.
type sfdiskJSON struct {
	PartitionTable struct {
		Partitions []struct {
			Node  string `json:"node"`
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
			Name  string `json:"name"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

func TestReadGPTMatchesSfdisk(t *testing.T) {
	dir := t.TempDir()
	// The third partition's name has a non-ASCII letter and a character
	// outside the BMP (a UTF-16 surrogate pair); slot 4 stays empty.
	img := sfdiskImage(t, dir, "label: gpt\n size=8M, name=root-a\n size=8M, name=verity-a\n size=4M, name=\"données-😀\"\n5: size=4M, name=data\n")
	var want sfdiskJSON
	if err := json.Unmarshal(run(t, "", "sfdisk", "--json", img), &want); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadGPT(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.PartitionTable.Partitions) {
		t.Fatalf("got %d partitions, sfdisk lists %d: %+v", len(got), len(want.PartitionTable.Partitions), got)
	}
	for i, w := range want.PartitionTable.Partitions {
		idx, _ := strconv.Atoi(strings.TrimPrefix(w.Node, img))
		wp := Partition{Index: idx, Type: strings.ToLower(w.Type), UUID: strings.ToLower(w.UUID), Name: w.Name,
			FirstLBA: w.Start, LastLBA: w.Start + w.Size - 1}
		if got[i] != wp {
			t.Errorf("partition %d:\n got  %+v\n want %+v", i, got[i], wp)
		}
	}
}

func TestReadGPTSynthetic(t *testing.T) {
	entries := []gptEntry{
		{index: 1, typ: linuxFS, uuid: uuidA, name: "root-a", first: 34, last: 99},
		{index: 3, typ: linuxFS, uuid: uuidB, name: "verity-a", first: 100, last: 199},
	}
	want := []Partition{
		{Index: 1, Type: linuxFS, UUID: uuidA, Name: "root-a", FirstLBA: 34, LastLBA: 99},
		{Index: 3, Type: linuxFS, UUID: uuidB, Name: "verity-a", FirstLBA: 100, LastLBA: 199},
	}
	for _, tc := range []struct {
		name             string
		sector, n, esize int
	}{{"512", 512, 128, 128}, {"4Kn", 4096, 128, 128}, {"256-byte entries", 512, 4, 256}, {"no entries", 512, 0, 128},
		// The largest array the kernel reads (4 MiB): keel reads it too.
		{"32768 entries", 512, 32768, 128}} {
		t.Run(tc.name, func(t *testing.T) {
			e, w := entries, want
			if tc.n == 0 {
				e, w = nil, nil
			}
			got, err := ReadGPT(bytes.NewReader(buildGPT(tc.sector, tc.n, tc.esize, e)))
			if err != nil || !reflect.DeepEqual(got, w) {
				t.Fatalf("got %+v, %v; want %+v", got, err, w)
			}
		})
	}
}

func TestReadGPTRejects(t *testing.T) {
	good := func() []byte {
		return buildGPT(512, 128, 128, []gptEntry{{index: 1, typ: linuxFS, uuid: uuidA, name: "root-a", first: 34, last: 99}})
	}
	tests := []struct {
		name    string
		edit    func(d []byte) []byte
		wantErr string
	}{
		{"header checksum", func(d []byte) []byte { d[512+8] ^= 1; return d }, "header at byte 512: checksum mismatch: stored "},
		{"entries checksum", func(d []byte) []byte { d[1024+56] = 'R'; return d }, "entry array: checksum mismatch"},
		{"header size too small", func(d []byte) []byte { binary.LittleEndian.PutUint32(d[512+12:], 91); return d }, "header size 91"},
		{"header size past sector", func(d []byte) []byte { binary.LittleEndian.PutUint32(d[512+12:], 513); return d }, "header size 513"},
		{"entry count times size too big", func(d []byte) []byte {
			binary.LittleEndian.PutUint32(d[512+80:], 0xffffffff)
			resign(d, 512)
			return d
		}, "want at most 4194304 bytes"},
		{"one entry past the kernel's 4 MiB", func(d []byte) []byte {
			binary.LittleEndian.PutUint32(d[512+80:], 32769)
			resign(d, 512)
			return d
		}, "32769 entries of 128 bytes, want at most 4194304 bytes"},
		{"entry size too small", func(d []byte) []byte {
			binary.LittleEndian.PutUint32(d[512+84:], 64)
			resign(d, 512)
			return d
		}, "entry size 64"},
		{"entries LBA overflow", func(d []byte) []byte {
			binary.LittleEndian.PutUint64(d[512+72:], 1<<62)
			resign(d, 512)
			return d
		}, "entry array at LBA"},
		{"entries past the end", func(d []byte) []byte {
			binary.LittleEndian.PutUint64(d[512+72:], 1000)
			resign(d, 512)
			return d
		}, "unexpected EOF"},
	}
	for _, tt := range tests {
		_, err := ReadGPT(bytes.NewReader(tt.edit(good())))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err = %v, want it to contain %q", tt.name, err, tt.wantErr)
		}
	}
	for _, d := range [][]byte{nil, make([]byte, 600), make([]byte, 1<<13)} {
		if _, err := ReadGPT(bytes.NewReader(d)); !errors.Is(err, ErrNoGPT) {
			t.Errorf("%d zero bytes: err = %v, want ErrNoGPT", len(d), err)
		}
	}
}

func TestPartitionName(t *testing.T) {
	tests := []struct {
		disk string
		n    int
		want string
	}{{"vda", 1, "vda1"}, {"sdb", 12, "sdb12"}, {"nvme0n1", 2, "nvme0n1p2"}, {"mmcblk0", 1, "mmcblk0p1"}, {"loop7", 3, "loop7p3"}}
	for _, tt := range tests {
		if got := PartitionName(tt.disk, tt.n); got != tt.want {
			t.Errorf("PartitionName(%q, %d) = %q, want %q", tt.disk, tt.n, got, tt.want)
		}
	}
}

// FuzzGPT: any disk reads as a table or an error without panicking; a
// table read has a sector size ReadDiskGPT tries, says it came from the
// backup exactly when the primary was damaged, finds the backup within the
// disk, and every partition's GUID is one PARTUUID= can name. sealed says
// which CRC32s are recomputed over the fuzzer's bytes before the disk is
// read (resealGPT), as a hostile writer computes them: without, every
// mutated header or entry byte fails its checksum and the table read is
// always the seed's own.
func FuzzGPT(f *testing.F) {
	part := []gptEntry{{index: 2, typ: linuxFS, uuid: uuidA, name: "root-a", first: 34, last: 99}}
	f.Add(buildGPT(512, 4, 128, part), uint8(0))
	f.Add(buildGPT(4096, 1, 128, nil), uint8(0))
	f.Add(buildGPT(512, 2, 1024, []gptEntry{{index: 1, typ: linuxFS, uuid: uuidB, name: "😀", first: 1, last: 0}}), uint8(0))
	damaged := withBackup(buildGPT(512, 4, 128, []gptEntry{{index: 1, typ: linuxFS, uuid: uuidA, name: "data", first: 34, last: 40}}), 512)
	damaged[512+40] ^= 1
	f.Add(damaged, uint8(0))                                  // read from its backup
	f.Add(damaged, uint8(sealBackupHeader|sealBackupEntries)) // the same, the backup resealed
	f.Add(withBackup(buildGPT(4096, 4, 128, part), 4096), uint8(0xff))
	f.Fuzz(func(t *testing.T, b []byte, sealed uint8) {
		b = resealGPT(b, sealed)
		g, err := ReadDiskGPT(bytes.NewReader(b))
		if err != nil {
			return
		}
		if (g.Sector != 512 && g.Sector != 4096) || (g.Damage == nil) != (g.BackupLBA == 0) || g.BackupLBA > uint64(len(b))/uint64(g.Sector) {
			t.Fatalf("table %+v from %d bytes", g, len(b))
		}
		for _, p := range g.Parts {
			// Every GUID read must be one a PARTUUID= can name (the all-zero
			// one names nothing and is refused by devspec).
			_, err := devspec.Parse("PARTUUID=" + p.UUID)
			if p.Index < 1 || len(p.UUID) != 36 || err != nil && p.UUID != "00000000-0000-0000-0000-000000000000" {
				t.Fatalf("bad partition %+v", p)
			}
		}
	})
}

// The CRC32s resealGPT recomputes: a header's and its entry array's, of
// the primary at LBA 1 and of the backups.
const (
	sealPrimaryHeader = 1 << iota
	sealPrimaryEntries
	sealBackupHeader
	sealBackupEntries
)

// resealGPT is a copy of disk with, at both sector sizes, the CRC32s of
// its GPTs that which names recomputed: the entry array's, stored in its
// header, then the header's. The backups are where ReadDiskGPT looks for them, the last LBA
// and the LBA the primary names, and go first, so that a primary whose
// array covers one sums it resealed. A header without the signature or with
// a size ReadDiskGPT refuses, and an array not within disk, are left alone.
func resealGPT(disk []byte, which uint8) []byte {
	disk = bytes.Clone(disk)
	for _, sector := range gptSectorSizes {
		n := int64(len(disk)) / sector
		if n < 2 {
			continue
		}
		backups := []int64{n - 1}
		if alt := binary.LittleEndian.Uint64(disk[sector+32:]); alt > 1 && alt < uint64(n-1) {
			backups = append(backups, int64(alt))
		}
		for _, lba := range backups {
			if lba > 1 {
				resealGPTHeader(disk, lba*sector, sector, which&sealBackupHeader != 0, which&sealBackupEntries != 0)
			}
		}
		resealGPTHeader(disk, sector, sector, which&sealPrimaryHeader != 0, which&sealPrimaryEntries != 0)
	}
	return disk
}

// resealGPTHeader is resealGPT for the header at byte at.
func resealGPTHeader(disk []byte, at, sector int64, header, entries bool) {
	h := disk[at : at+sector]
	size := binary.LittleEndian.Uint32(h[12:])
	if string(h[:8]) != "EFI PART" || size < gptHeaderMinSize || int64(size) > sector {
		return
	}
	if entries {
		lba, total := binary.LittleEndian.Uint64(h[72:]), uint64(binary.LittleEndian.Uint32(h[80:]))*uint64(binary.LittleEndian.Uint32(h[84:]))
		if lba <= uint64(len(disk))/uint64(sector) && total <= uint64(len(disk)) && lba*uint64(sector) <= uint64(len(disk))-total {
			off := lba * uint64(sector)
			binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(disk[off:off+total]))
		}
	}
	if header {
		resign(disk, int(at))
	}
}

// eioAt fails reads that touch [from, to) with EIO, as a bad sector does.
type eioAt struct {
	*bytes.Reader
	from, to int64
}

func (r eioAt) ReadAt(b []byte, off int64) (int, error) {
	if off < r.to && off+int64(len(b)) > r.from {
		return 0, syscall.EIO
	}
	return r.Reader.ReadAt(b, off)
}

// noSize hides a reader's size: only the primary can be read.
type noSize struct{ r io.ReaderAt }

func (n noSize) ReadAt(b []byte, off int64) (int, error) { return n.r.ReadAt(b, off) }

// TestReadDiskGPTBackup: a primary GPT that one bad sector damaged (its
// header, its entry array, LBA 1 unreadable or blank) is read from the
// backup at the disk's last LBA, as the same table, saying why; a blank
// LBA 1 with no protective MBR is no GPT (a backup left behind by an
// earlier layout is not trusted), and damage at both ends is an error.
func TestReadDiskGPTBackup(t *testing.T) {
	img := sfdiskImage(t, t.TempDir(), "label: gpt\n size=8M, name=root-a\n size=8M, name=verity-a\n5: size=4M, name=data\n")
	pristine, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sound, err := ReadDiskGPT(bytes.NewReader(pristine))
	if err != nil || sound.Damage != nil || sound.Sector != 512 || len(sound.Parts) != 3 {
		t.Fatalf("sound disk: %+v, %v", sound, err)
	}
	last := uint64(len(pristine)/512 - 1)
	lastByte := int64(last) * 512
	zero := func(d []byte, off, n int) { clear(d[off : off+n]) }
	for _, tc := range []struct {
		name      string
		edit      func(d []byte)
		reader    func(d []byte) io.ReaderAt
		damage    string // "" for no backup read
		err       string // "" for a table read
		noGPT     bool
		backupLBA uint64 // 0: the last LBA
	}{
		{name: "header checksum", edit: func(d []byte) { d[512+40] ^= 0x10 }, damage: "GPT header at byte 512: checksum mismatch"},
		{name: "entry array", edit: func(d []byte) { d[1024+60] ^= 0x10 }, damage: "GPT entry array: checksum mismatch"},
		{name: "LBA 1 blank behind a protective MBR", edit: func(d []byte) { zero(d, 512, 512) }, damage: "no GPT header at byte 512"},
		{name: "LBA 1 unreadable", reader: func(d []byte) io.ReaderAt { return eioAt{bytes.NewReader(d), 512, 1024} }, damage: "input/output error"},
		{name: "header placed at another LBA", edit: func(d []byte) {
			binary.LittleEndian.PutUint64(d[512+24:], 7)
			resign(d, 512)
		}, damage: "says it is at LBA 7, want 1"},
		{name: "protective MBR damaged, primary sound", edit: func(d []byte) { zero(d, 446, 66) }},
		{name: "blank LBA 1 without a protective MBR", edit: func(d []byte) { zero(d, 0, 1024) }, noGPT: true},
		{name: "both headers damaged", edit: func(d []byte) { d[512+40] ^= 0x10; d[lastByte+40] ^= 0x10 },
			err: "GPT header at byte 512: checksum mismatch: stored"},
		{name: "backup's entries damaged too", edit: func(d []byte) { d[1024+60] ^= 0x10; d[lastByte-32*512+60] ^= 0x10 },
			err: "; the backup GPT: GPT entry array: checksum mismatch"},
		{name: "size unknown", edit: func(d []byte) { d[512+40] ^= 0x10 }, reader: func(d []byte) io.ReaderAt { return noSize{bytes.NewReader(d)} },
			err: "checksum mismatch"},
		// A bad 4 KiB physical sector of a 512e disk: LBAs 0 to 7 at once.
		{name: "sectors 0 to 7 unreadable", reader: func(d []byte) io.ReaderAt { return eioAt{bytes.NewReader(d), 0, 4096} }, damage: "input/output error"},
		// A DOS MBR (no 0xee) over a GPT disk: what LBA 1 and the end hold is a leftover.
		{name: "DOS MBR over a damaged leftover GPT", edit: func(d []byte) { d[446+4] = 0x83; d[512+40] ^= 0x10 },
			err: "GPT header at byte 512: checksum mismatch"},
		{name: "backup of another table", edit: func(d []byte) {
			d[512+40] ^= 0x10 // the primary's CRC, not its GUID
			d[lastByte+56] ^= 1
			resign(d, int(lastByte))
		}, err: "it belongs to another table (a layout of before)"},
		{name: "backup not pointing at LBA 1", edit: func(d []byte) {
			d[512+40] ^= 0x10
			binary.LittleEndian.PutUint64(d[lastByte+32:], 2)
			resign(d, int(lastByte))
		}, err: "says its primary is at LBA 2, want 1"},
		{name: "disk grown since: the backup where the sound header says", edit: func(d []byte) { d[1024+60] ^= 0x10 },
			reader: func(d []byte) io.ReaderAt { return bytes.NewReader(append(d, make([]byte, 1<<20)...)) }, damage: "GPT entry array: checksum mismatch", backupLBA: last},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := bytes.Clone(pristine)
			if tc.edit != nil {
				tc.edit(d)
			}
			var r io.ReaderAt = bytes.NewReader(d)
			if tc.reader != nil {
				r = tc.reader(d)
			}
			g, err := ReadDiskGPT(r)
			switch {
			case tc.noGPT:
				if !errors.Is(err, ErrNoGPT) {
					t.Fatalf("got %+v, %v; want ErrNoGPT", g, err)
				}
				return
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) || errors.Is(err, ErrNoGPT) {
					t.Fatalf("got %+v, %v; want an error containing %q that is not ErrNoGPT", g, err, tc.err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if !reflect.DeepEqual(g.Parts, sound.Parts) || g.Sector != 512 {
				t.Errorf("partitions %+v (sector %d), want the sound table's %+v", g.Parts, g.Sector, sound.Parts)
			}
			if tc.damage == "" {
				if g.Damage != nil || g.BackupLBA != 0 {
					t.Errorf("damage %v at %d, want the primary read", g.Damage, g.BackupLBA)
				}
				return
			}
			wantLBA := uint64(len(d)/512 - 1)
			if tc.backupLBA != 0 {
				wantLBA = tc.backupLBA
			}
			if g.Damage == nil || !strings.Contains(g.Damage.Error(), tc.damage) || g.BackupLBA != wantLBA {
				t.Errorf("damage %v, backup LBA %d; want %q, LBA %d", g.Damage, g.BackupLBA, tc.damage, wantLBA)
			}
		})
	}
}

// withBackup gives a buildGPT disk a protective MBR and a backup GPT (its
// entry array, then its header at the new last LBA).
func withBackup(d []byte, sector int) []byte {
	h := d[sector:]
	entries := int(binary.LittleEndian.Uint64(h[72:])) * sector
	arr := d[entries : entries+int(binary.LittleEndian.Uint32(h[80:])*binary.LittleEndian.Uint32(h[84:]))]
	base := (len(d) + sector - 1) / sector * sector
	arrBytes := (len(arr) + sector - 1) / sector * sector
	out := make([]byte, base+arrBytes+sector)
	copy(out, d)
	copy(out[base:], arr)
	bh := out[base+arrBytes:]
	copy(bh, h[:92])
	binary.LittleEndian.PutUint64(bh[24:], uint64((base+arrBytes)/sector))
	binary.LittleEndian.PutUint64(bh[32:], 1)
	binary.LittleEndian.PutUint64(bh[72:], uint64(base/sector))
	resign(out, base+arrBytes)
	out[446+4], out[510], out[511] = mbrProtective, 0x55, 0xaa
	return out
}

func TestReadDiskGPTBackup4Kn(t *testing.T) {
	e := []gptEntry{{index: 2, typ: linuxFS, uuid: uuidA, name: "root-a", first: 6, last: 9}}
	d := withBackup(buildGPT(4096, 4, 128, e), 4096)
	want := []Partition{{Index: 2, Type: linuxFS, UUID: uuidA, Name: "root-a", FirstLBA: 6, LastLBA: 9}}
	if g, err := ReadDiskGPT(bytes.NewReader(d)); err != nil || g.Damage != nil || g.Sector != 4096 || !reflect.DeepEqual(g.Parts, want) {
		t.Fatalf("sound: %+v, %v", g, err)
	}
	// A bad sector 0 (the kernel finds no partition): the 512-byte pass's
	// read error does not end the search.
	if g, err := ReadDiskGPT(eioAt{bytes.NewReader(d), 0, 4096}); err != nil || g.Damage != nil || g.Sector != 4096 || !reflect.DeepEqual(g.Parts, want) {
		t.Fatalf("sector 0 unreadable: %+v, %v", g, err)
	}
	d[4096+40] ^= 1
	g, err := ReadDiskGPT(bytes.NewReader(d))
	if err != nil || g.Damage == nil || g.Sector != 4096 || g.BackupLBA != uint64(len(d)/4096-1) || !reflect.DeepEqual(g.Parts, want) {
		t.Fatalf("damaged primary: %+v, %v; want the backup's %+v", g, err, want)
	}
}
