// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

func validSuperblock(t testing.TB) []byte {
	t.Helper()
	sb, err := NewSuperblock(Params{DataBlocks: 1000, Salt: []byte{1, 2, 3}, UUID: testUUID})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSuperblockRoundTrip(t *testing.T) {
	b := validSuperblock(t)
	sb, err := ParseSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Params{HashAlg: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 1000, Salt: []byte{1, 2, 3}, UUID: testUUID}
	if got := sb.Params(); !reflect.DeepEqual(got, want) {
		t.Errorf("Params() = %+v, want %+v", got, want)
	}
	if sb.Version != 1 || sb.HashType != 1 {
		t.Errorf("version %d, hash type %d; want 1, 1", sb.Version, sb.HashType)
	}
	again, err := sb.MarshalBinary()
	if err != nil || !bytes.Equal(again, b) {
		t.Errorf("MarshalBinary after parse differs (err %v)", err)
	}
}

func TestParseSuperblockErrors(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name string
		edit func([]byte) []byte
		err  string
	}{
		{"short", func(b []byte) []byte { return b[:511] }, "511 bytes, want at least 512"},
		{"signature", func(b []byte) []byte { b[6] = 'x'; return b }, `signature "verityx\x00", want "verity\x00\x00"`},
		{"version", func(b []byte) []byte { le.PutUint32(b[8:], 2); return b }, "version 2, want 1"},
		{"chrome os", func(b []byte) []byte { le.PutUint32(b[12:], 0); return b }, "hash type 0, want 1"},
		{"algorithm", func(b []byte) []byte { copy(b[32:], "md5\x00\x00\x00"); return b }, `hash algorithm "md5" not supported`},
		{"unterminated algorithm", func(b []byte) []byte { copy(b[32:64], bytes.Repeat([]byte{'a'}, 32)); return b }, "not supported"},
		{"data block size", func(b []byte) []byte { le.PutUint32(b[64:], 3000); return b }, "data block size 3000"},
		{"hash block size", func(b []byte) []byte { le.PutUint32(b[68:], 0); return b }, "hash block size 0"},
		{"no blocks", func(b []byte) []byte { le.PutUint64(b[72:], 0); return b }, "0 data blocks"},
		{"salt size", func(b []byte) []byte { le.PutUint16(b[80:], 257); return b }, "salt size 257, want at most 256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSuperblock(tc.edit(validSuperblock(t)))
			if tc.err == "" {
				t.Fatal("test needs an error")
			}
			checkErr(t, err, tc.err)
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	_, err := (&Superblock{Algorithm: string(bytes.Repeat([]byte{'a'}, 32))}).MarshalBinary()
	checkErr(t, err, "longer than 31 bytes")
	_, err = (&Superblock{Algorithm: "sha256", Salt: make([]byte, 257)}).MarshalBinary()
	checkErr(t, err, "salt is 257 bytes")
	_, err = NewSuperblock(Params{})
	checkErr(t, err, "0 data blocks")
}

// FuzzParseSuperblock checks that parsing never panics and that whatever it
// accepts encodes back to a superblock that parses to the same thing.
func FuzzParseSuperblock(f *testing.F) {
	good := validSuperblock(f)
	f.Add(good)
	f.Add(good[:100])
	f.Add(append(bytes.Clone(good), make([]byte, 3584)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			return
		}
		if err := sb.Params().Validate(); err != nil {
			t.Fatalf("accepted invalid params: %v", err)
		}
		enc, err := sb.MarshalBinary()
		if err != nil {
			t.Fatalf("cannot encode accepted superblock %+v: %v", sb, err)
		}
		again, err := ParseSuperblock(enc)
		if err != nil || !reflect.DeepEqual(again, sb) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, sb)
		}
	})
}
