// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"slices"
	"testing"
)

func TestDataBlocksFor(t *testing.T) {
	tests := []struct {
		size int64
		p    Params
		want uint64
	}{
		{0, Params{}, 0},
		{-1, Params{}, 0},
		{100, Params{}, 0},
		{4096, Params{}, 1},
		{10000, Params{}, 2}, // veritysetup ignores the partial last block
		{8192, Params{}, 2},
		{10000, Params{DataBlockSize: 512}, 19},
		{10000, Params{DataBlockSize: 1000}, 0}, // not a valid block size
	}
	for _, tc := range tests {
		if got := DataBlocksFor(tc.size, tc.p); got != tc.want {
			t.Errorf("DataBlocksFor(%d, %+v) = %d, want %d", tc.size, tc.p, got, tc.want)
		}
	}
}

func TestGeometry(t *testing.T) {
	tests := []struct {
		p        Params
		levels   []uint64
		perBlock int
		stride   int
		size     int64
	}{
		{Params{DataBlocks: 1}, nil, 128, 32, 4096},
		{Params{DataBlocks: 2}, []uint64{1}, 128, 32, 2 * 4096},
		{Params{DataBlocks: 128}, []uint64{1}, 128, 32, 2 * 4096},
		{Params{DataBlocks: 129}, []uint64{2, 1}, 128, 32, 4 * 4096},
		{Params{DataBlocks: 128*128 + 1}, []uint64{129, 2, 1}, 128, 32, 133 * 4096},
		{Params{DataBlocks: 65, HashAlg: "sha512"}, []uint64{2, 1}, 64, 64, 4 * 4096},
		{Params{DataBlocks: 300, HashAlg: "sha1"}, []uint64{3, 1}, 128, 32, 5 * 4096}, // 20-byte digests in 32-byte slots
		{Params{DataBlocks: 300, HashAlg: "sha384"}, []uint64{5, 1}, 64, 64, 7 * 4096},
		{Params{DataBlocks: 17, HashBlockSize: 512}, []uint64{2, 1}, 16, 32, 4 * 512},
	}
	for _, tc := range tests {
		g, err := tc.p.WithDefaults().geometry()
		if err != nil {
			t.Errorf("%+v: %v", tc.p, err)
			continue
		}
		if !slices.Equal(g.levels, tc.levels) || g.perBlock != tc.perBlock || g.stride != tc.stride {
			t.Errorf("%+v: levels %v, %d per block, stride %d; want %v, %d, %d", tc.p, g.levels, g.perBlock, g.stride, tc.levels, tc.perBlock, tc.stride)
		}
		if got := HashDeviceSize(tc.p); got != tc.size {
			t.Errorf("HashDeviceSize(%+v) = %d, want %d", tc.p, got, tc.size)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Params{DataBlocks: 1}.WithDefaults()
	tests := []struct {
		name string
		edit func(*Params)
		err  string
	}{
		{"defaults", func(*Params) {}, ""},
		{"unknown hash", func(p *Params) { p.HashAlg = "md5" }, `hash algorithm "md5" not supported`},
		{"no defaults", func(p *Params) { p.HashAlg = "" }, `hash algorithm "" not supported`},
		{"odd data block", func(p *Params) { p.DataBlockSize = 4000 }, "data block size 4000 is not a power of two"},
		{"tiny hash block", func(p *Params) { p.HashBlockSize = 256 }, "hash block size 256 is not a power of two between 512"},
		{"huge hash block", func(p *Params) { p.HashBlockSize = 1 << 20 }, "hash block size 1048576"},
		{"no blocks", func(p *Params) { p.DataBlocks = 0 }, "0 data blocks, want at least one 4096-byte block"},
		{"overflow", func(p *Params) { p.DataBlocks = 1 << 62 }, "overflow a 64-bit device size"},
		{"salt too long", func(p *Params) { p.Salt = make([]byte, 257) }, "salt is 257 bytes, want at most 256"},
		{"max salt", func(p *Params) { p.Salt = make([]byte, 256) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			checkErr(t, p.Validate(), tc.err)
		})
	}
	if HashDeviceSize(Params{}) != 0 {
		t.Errorf("HashDeviceSize of invalid params is not 0")
	}
}

func TestWithDefaults(t *testing.T) {
	p := Params{}.WithDefaults()
	if p.HashAlg != "sha256" || p.DataBlockSize != 4096 || p.HashBlockSize != 4096 {
		t.Errorf("WithDefaults() = %+v", p)
	}
	q := Params{HashAlg: "sha512", DataBlockSize: 512, HashBlockSize: 1024}.WithDefaults()
	if q.HashAlg != "sha512" || q.DataBlockSize != 512 || q.HashBlockSize != 1024 {
		t.Errorf("WithDefaults() overrode set fields: %+v", q)
	}
	if n := (Params{HashAlg: "sha512"}).DigestSize(); n != 64 {
		t.Errorf("DigestSize(sha512) = %d", n)
	}
}
