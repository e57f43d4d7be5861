// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	root := bytes.Repeat([]byte{0xab}, 32)
	base := Target{
		Name: "keel-root-a", DataDev: "/dev/vda2", HashDev: "/dev/vda3", HashOffset: 4096,
		Params: Params{DataBlocks: 1000, Salt: []byte{0x01, 0x02}}, RootHash: root,
	}
	const rootHex = "abababababababababababababababababababababababababababababababab"
	tests := []struct {
		name string
		edit func(*Target)
		want string
		err  string
	}{
		{name: "defaults", want: "1 /dev/vda2 /dev/vda3 4096 4096 1000 2 sha256 " + rootHex + " 0102 1 restart_on_corruption"},
		{name: "plain hash device", edit: func(t *Target) { t.HashOffset = 0 },
			want: "1 /dev/vda2 /dev/vda3 4096 4096 1000 1 sha256 " + rootHex + " 0102 1 restart_on_corruption"},
		{name: "empty salt", edit: func(t *Target) { t.Params.Salt = nil },
			want: "1 /dev/vda2 /dev/vda3 4096 4096 1000 2 sha256 " + rootHex + " - 1 restart_on_corruption"},
		{name: "no options", edit: func(t *Target) { t.Options = []string{} },
			want: "1 /dev/vda2 /dev/vda3 4096 4096 1000 2 sha256 " + rootHex + " 0102"},
		{name: "options with arguments", edit: func(t *Target) {
			t.Options = []string{"panic_on_corruption", "check_at_most_once", "use_fec_from_device /dev/vda4", "fec_roots 2"}
		}, want: "1 /dev/vda2 /dev/vda3 4096 4096 1000 2 sha256 " + rootHex + " 0102 6 panic_on_corruption check_at_most_once use_fec_from_device /dev/vda4 fec_roots 2"},
		{name: "512-byte hash blocks", edit: func(t *Target) { t.Params.HashBlockSize = 512; t.Params.DataBlockSize = 1024 },
			want: "1 /dev/vda2 /dev/vda3 1024 512 1000 9 sha256 " + rootHex + " 0102 1 restart_on_corruption"},
		{name: "sha512", edit: func(t *Target) { t.Params.HashAlg = "sha512"; t.RootHash = bytes.Repeat([]byte{1}, 64) },
			want: "1 /dev/vda2 /dev/vda3 4096 4096 1000 2 sha512 " + string(bytes.Repeat([]byte("01"), 64)) + " 0102 1 restart_on_corruption"},
		{name: "empty option", edit: func(t *Target) { t.Options = []string{" "} }, err: "empty option"},
		{name: "root too short", edit: func(t *Target) { t.RootHash = root[:20] }, err: "root hash is 20 bytes, want 32 for sha256"},
		{name: "no data device", edit: func(t *Target) { t.DataDev = "" }, err: `data device "" is empty`},
		{name: "space in hash device", edit: func(t *Target) { t.HashDev = "/dev/a b" }, err: `hash device "/dev/a b" is empty or has white space`},
		{name: "unaligned offset", edit: func(t *Target) { t.HashOffset = 100 }, err: "hash offset 100 is not a multiple of the hash block size 4096"},
		{name: "no blocks", edit: func(t *Target) { t.Params.DataBlocks = 0 }, err: "dm-verity keel-root-a: verity: 0 data blocks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg := base
			if tc.edit != nil {
				tc.edit(&tg)
			}
			got, err := tg.Table()
			checkErr(t, err, tc.err)
			if got != tc.want {
				t.Errorf("Table() =\n%q, want\n%q", got, tc.want)
			}
		})
	}
}

func TestTargetSize(t *testing.T) {
	tg := Target{Params: Params{DataBlocks: 3, DataBlockSize: 1024}}
	if got := tg.Size(); got != 3072 {
		t.Errorf("Size() = %d, want 3072", got)
	}
}

// TestCheckFits: a target fits devices exactly as large as the image and
// the hash offset plus what Format writes, and not a byte smaller; block
// sizes above the page size are refused as the kernel refuses them
// (CheckPageSize).
func TestCheckFits(t *testing.T) {
	for _, p := range []Params{
		{DataBlocks: 1000},
		{DataBlocks: 1000, DataBlockSize: 1024, HashBlockSize: 512},
		{DataBlocks: 33, HashAlg: "sha512"},
		{DataBlocks: 1},
	} {
		p = p.WithDefaults()
		data := randomBytes(int64(p.DataBlocks)*int64(p.DataBlockSize), 7)
		hash, root := format(t, data, p)
		for _, offset := range []uint64{0, 8192} {
			tg := Target{Name: "keel-root-a", DataDev: "/dev/vda2", HashDev: "/dev/vda3", HashOffset: offset, Params: p, RootHash: root}
			dataSize, hashSize := int64(len(data)), int64(offset)+int64(len(hash))
			if err := tg.CheckFits(dataSize, hashSize); err != nil {
				t.Errorf("%+v at %d: %v, want it to fit", p, offset, err)
			}
			if err := tg.CheckFits(dataSize-1, hashSize); err == nil || !strings.Contains(err.Error(), "the data device /dev/vda2 holds") {
				t.Errorf("%+v: data device a byte short: %v", p, err)
			}
			if err := tg.CheckFits(dataSize, hashSize-1); err == nil || !strings.Contains(err.Error(), "the hash device /dev/vda3 holds") {
				t.Errorf("%+v at %d: hash device a byte short: %v", p, offset, err)
			}
		}
	}
	tg := Target{Name: "keel-root-a", DataDev: "/dev/vda2", HashDev: "/dev/vda3", Params: Params{DataBlocks: 10, DataBlockSize: 16384}}
	if err := tg.CheckPageSize(4096); err == nil || !strings.Contains(err.Error(), "data block size 16384 is larger than the page size 4096") {
		t.Errorf("16 KiB data blocks on 4 KiB pages: %v", err)
	}
	if err := tg.CheckPageSize(16384); err != nil {
		t.Errorf("16 KiB data blocks on 16 KiB pages: %v", err)
	}
}
