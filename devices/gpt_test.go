// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
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
	}{{"512", 512, 128, 128}, {"4Kn", 4096, 128, 128}, {"256-byte entries", 512, 4, 256}, {"no entries", 512, 0, 128}} {
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
		}, "want at most 1048576 bytes"},
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

func FuzzGPT(f *testing.F) {
	f.Add(buildGPT(512, 4, 128, []gptEntry{{index: 2, typ: linuxFS, uuid: uuidA, name: "root-a", first: 34, last: 99}}))
	f.Add(buildGPT(4096, 1, 128, nil))
	f.Add(buildGPT(512, 2, 1024, []gptEntry{{index: 1, typ: linuxFS, uuid: uuidB, name: "😀", first: 1, last: 0}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := ReadGPT(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, p := range parts {
			// Every GUID read must be one a PARTUUID= can name (the all-zero
			// one names nothing and is refused by devspec).
			_, err := devspec.Parse("PARTUUID=" + p.UUID)
			if p.Index < 1 || len(p.UUID) != 36 || err != nil && p.UUID != "00000000-0000-0000-0000-000000000000" {
				t.Fatalf("bad partition %+v", p)
			}
		}
	})
}
