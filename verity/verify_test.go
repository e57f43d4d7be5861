// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestVerify corrupts one thing at a time in a two-level tree over 300 blocks
// (level 1: one block; level 0: three blocks, the last one partly padding).
func TestVerify(t *testing.T) {
	p := Params{DataBlocks: 300, Salt: []byte("salt"), UUID: testUUID}
	data := randomBytes(300*4096, 1)
	hash, root := format(t, data, p)
	const blk = 4096
	// Hash device: superblock block, level 1 (block 1), level 0 (blocks 2-4).
	tests := []struct {
		name     string
		data     func([]byte)
		hash     func([]byte)
		root     []byte
		p        func(*Params)
		want     string
		mismatch bool
	}{
		{name: "good"},
		{name: "flipped data byte", data: flip(5*blk + 17), want: "data block 5 (byte 20480) does not match level 0", mismatch: true},
		{name: "flipped last data byte", data: flip(300*blk - 1), want: "data block 299 ", mismatch: true},
		{name: "flipped level 0 digest", hash: flip(3*blk + 40), want: "level 0 hash block 1 (hash device byte 12288) does not match level 1", mismatch: true},
		{name: "flipped level 0 padding", hash: flip(5*blk - 1), want: "level 0 hash block 2 (hash device byte 16384) does not match level 1", mismatch: true},
		{name: "flipped top level", hash: flip(blk + 5), want: "root hash mismatch: level 1 block 0 hashes to", mismatch: true},
		{name: "wrong root", root: bytes.Repeat([]byte{1}, 32), want: "root hash mismatch", mismatch: true},
		{name: "short root", root: root[:31], want: "root hash is 31 bytes, want 32"},
		{name: "other salt", p: func(p *Params) { p.Salt = []byte("pepper") }, want: "superblock has salt 73616c74, want 70657070"},
		{name: "other block count", p: func(p *Params) { p.DataBlocks = 299 }, want: "superblock has data blocks 300, want 299"},
		{name: "other uuid", p: func(p *Params) { p.UUID[0] = 0 }, want: "superblock has uuid 12345678-"},
		{name: "zero uuid accepts any", p: func(p *Params) { p.UUID = [16]byte{} }},
		{name: "bad superblock", hash: flip(0), want: "hash device: verity superblock: signature"},
		{name: "short hash device", hash: func(b []byte) { clear(b[len(b)-blk:]) }, want: "level 0 hash block 2", mismatch: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, h, r, q := slices.Clone(data), slices.Clone(hash), root, p
			if tc.data != nil {
				tc.data(d)
			}
			if tc.hash != nil {
				tc.hash(h)
			}
			if tc.root != nil {
				r = tc.root
			}
			if tc.p != nil {
				tc.p(&q)
			}
			err := Verify(bytes.NewReader(d), bytes.NewReader(h), q, r)
			checkErr(t, err, tc.want)
			if got := errors.Is(err, ErrMismatch); got != tc.mismatch {
				t.Errorf("errors.Is(%v, ErrMismatch) = %v, want %v", err, got, tc.mismatch)
			}
		})
	}
}

// TestVerifyShortDevices checks that truncated devices are reported as such.
func TestVerifyShortDevices(t *testing.T) {
	p := Params{DataBlocks: 300}
	data := randomBytes(300*4096, 2)
	hash, root := format(t, data, p)
	err := Verify(bytes.NewReader(data), bytes.NewReader(hash[:len(hash)-1]), p, root)
	checkErr(t, err, "reading hash tree blocks 0-3")
	err = Verify(bytes.NewReader(data), bytes.NewReader(hash[:100]), p, root)
	checkErr(t, err, "reading hash device superblock: got 100 of 512 bytes: EOF")
	err = Verify(bytes.NewReader(data[:len(data)-1]), bytes.NewReader(hash), p, root)
	checkErr(t, err, "reading data blocks")
}

// TestVerifyOneBlock covers the tree without levels: the root hashes the data.
func TestVerifyOneBlock(t *testing.T) {
	p := Params{DataBlocks: 1}
	data := randomBytes(4096, 3)
	hash, root := format(t, data, p)
	if len(hash) != 4096 {
		t.Fatalf("hash device is %d bytes, want the superblock block only", len(hash))
	}
	checkErr(t, Verify(bytes.NewReader(data), bytes.NewReader(hash), p, root), "")
	data[0] ^= 1
	checkErr(t, Verify(bytes.NewReader(data), bytes.NewReader(hash), p, root), "root hash mismatch: data block 0 hashes to")
}

func flip(off int) func([]byte) {
	return func(b []byte) { b[off] ^= 0x40 }
}

// checkErr wants err to contain want, or to be nil when want is "".
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("error %v, want it to contain %q", err, want)
	}
}

// TestVerifyDirtyPadding builds a consistent tree whose level 0 padding is
// not zero: the kernel would accept it, veritysetup verify does not, nor does Verify.
func TestVerifyDirtyPadding(t *testing.T) {
	salt := []byte("salt")
	p := Params{DataBlocks: 300, Salt: salt}
	data := randomBytes(300*4096, 4)
	hash, _ := format(t, data, p)
	const blk = 4096
	hash[5*blk-1] = 0xff // padding of level 0 block 2
	d := sha256.Sum256(append(slices.Clone(salt), hash[4*blk:5*blk]...))
	copy(hash[blk+2*32:], d[:]) // its digest in level 1
	root := sha256.Sum256(append(slices.Clone(salt), hash[blk:2*blk]...))
	err := Verify(bytes.NewReader(data), bytes.NewReader(hash), p, root[:])
	checkErr(t, err, "level 0 hash block 2 (hash device byte 16384): padding byte 4095 is 0xff, want 0")
}
