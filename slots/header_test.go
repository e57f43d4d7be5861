// SPDX-License-Identifier: Apache-2.0

package slots

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/verity"
)

// testKey returns a fixed key pair so that failures are reproducible.
func testKey(seed byte) (ed25519.PrivateKey, ed25519.PublicKey) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return key, key.Public().(ed25519.PublicKey)
}

// testHeader is a valid unsigned header of a 1 MiB image.
func testHeader() *Header {
	p := verity.Params{
		HashAlg: "sha256", DataBlockSize: 4096, HashBlockSize: 4096,
		DataBlocks: 256, Salt: bytes.Repeat([]byte{0x5a}, 32),
		UUID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	}
	return &Header{
		ImageID:    "debian-2026.11.22",
		Created:    time.Unix(1763800000, 0).UTC(),
		ImageSize:  256 * 4096,
		Verity:     p,
		HashOffset: HashOffset,
		HashSize:   uint64(verity.HashDeviceSize(p)),
		RootHash:   bytes.Repeat([]byte{0xab}, 32),
	}
}

func signedHeader(t testing.TB) (*Header, ed25519.PublicKey) {
	t.Helper()
	key, pub := testKey(1)
	h := testHeader()
	if err := h.Sign(key); err != nil {
		t.Fatal(err)
	}
	return h, pub
}

func marshal(t testing.TB, h *Header) []byte {
	t.Helper()
	b, err := h.MarshalBinary()
	if err != nil {
		t.Fatalf("MarshalBinary: %v", err)
	}
	return b
}

// rechecksum recomputes the checksum of b after a test altered it, to reach
// the checks behind the checksum.
func rechecksum(b []byte) {
	sum := sha256.Sum256(b[:offChecksum])
	copy(b[offChecksum:], sum[:])
}

func TestHeaderRoundTrip(t *testing.T) {
	signed, _ := signedHeader(t)
	for name, h := range map[string]*Header{"unsigned": testHeader(), "signed": signed} {
		t.Run(name, func(t *testing.T) {
			b := marshal(t, h)
			if len(b) != HeaderSize {
				t.Fatalf("MarshalBinary: %d bytes, want %d", len(b), HeaderSize)
			}
			got, err := ParseHeader(b)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if !reflect.DeepEqual(got, h) {
				t.Errorf("ParseHeader(MarshalBinary(h)) =\n%+v\nwant\n%+v", got, h)
			}
		})
	}
}

func TestMarshalRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(h *Header)
		want   string
	}{
		{"empty id", func(h *Header) { h.ImageID = "" }, "image id is 0 bytes"},
		{"long id", func(h *Header) { h.ImageID = strings.Repeat("x", 65) }, "image id is 65 bytes"},
		{"space in id", func(h *Header) { h.ImageID = "a b" }, "expected printable ASCII"},
		{"before 1970", func(h *Header) { h.Created = time.Unix(-1, 0) }, "creation time"},
		{"unknown alg", func(h *Header) { h.Verity.HashAlg = "md5" }, "not supported"},
		{"data block 1000", func(h *Header) { h.Verity.DataBlockSize = 1000 }, "data block size 1000"},
		{"hash block 128k", func(h *Header) { h.Verity.HashBlockSize = 1 << 17 }, "hash block size 131072"},
		{"too few blocks", func(h *Header) { h.Verity.DataBlocks = 255 }, "255 data blocks, expected 256"},
		{"unaligned image", func(h *Header) { h.ImageSize++ }, "image size 1048577"},
		{"empty image", func(h *Header) { h.ImageSize, h.Verity.DataBlocks = 0, 0 }, "image size 0"},
		{"long salt", func(h *Header) { h.Verity.Salt = make([]byte, 257) }, "salt is 257 bytes"},
		{"hash offset in header", func(h *Header) { h.HashOffset = 512 }, "hash offset 512"},
		{"hash offset unaligned", func(h *Header) { h.HashOffset = 6144 }, "hash offset 6144"},
		{"hash size", func(h *Header) { h.HashSize += 4096 }, "hash device size"},
		{"short root", func(h *Header) { h.RootHash = h.RootHash[:20] }, "root hash is 20 bytes, expected 32"},
		{"key id without signature", func(h *Header) { h.KeyID[0] = 1 }, "signature is 0 bytes"},
		{"signature without key id", func(h *Header) { h.Signature = make([]byte, 64) }, "zero key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHeader()
			tt.change(h)
			_, err := h.MarshalBinary()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("MarshalBinary: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseHeaderRejects(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name       string
		change     func(b []byte) []byte
		rechecksum bool
		want       string
	}{
		{"short", func(b []byte) []byte { return b[:100] }, false, "100 bytes, expected 4096"},
		{"zeros", func(b []byte) []byte { return make([]byte, HeaderSize) }, false, "no keel slot header"},
		{"version 2", func(b []byte) []byte { le.PutUint32(b[offVersion:], 2); return b }, false, "version 2, this keel reads version 1"},
		{"checksum", func(b []byte) []byte { b[offImageID] ^= 1; return b }, false, "checksum mismatch"},
		{"header size", func(b []byte) []byte { le.PutUint32(b[offHeaderSize:], 512); return b }, true, "header size field 512"},
		{"reserved 1", func(b []byte) []byte { b[offReserved1+3] = 1; return b }, true, "reserved bytes at offset 183"},
		{"reserved 2", func(b []byte) []byte { b[HeaderSize-1] = 1; return b }, false, "reserved bytes at offset 4095"},
		{"id padding", func(b []byte) []byte { b[offCreated-1] = 'x'; return b }, true, "image id padding"},
		{"alg padding", func(b []byte) []byte { b[offDataBS-1] = 'x'; return b }, true, "hash algorithm padding"},
		{"salt length", func(b []byte) []byte { le.PutUint16(b[offSaltLen:], 300); return b }, true, "salt length 300"},
		{"salt padding", func(b []byte) []byte { le.PutUint16(b[offSaltLen:], 16); return b }, true, "salt padding"},
		{"root length", func(b []byte) []byte { le.PutUint16(b[offRootLen:], 65); return b }, true, "root hash length 65"},
		{"negative time", func(b []byte) []byte { le.PutUint64(b[offCreated:], 1<<63); return b }, true, "creation time"},
		{"unsigned with signature", func(b []byte) []byte { b[offSignature] = 1; return b }, true, "signature of an unsigned header"},
		{"data blocks", func(b []byte) []byte { le.PutUint64(b[offDataBlocks:], 1<<62); return b }, true, "data blocks, expected 256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.change(marshal(t, testHeader()))
			if tt.rechecksum {
				rechecksum(b)
			}
			_, err := ParseHeader(b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseHeader: error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestEveryByteFlipCaught flips each bit pattern of each byte of a signed
// header: the checksum must catch every one.
func TestEveryByteFlipCaught(t *testing.T) {
	h, _ := signedHeader(t)
	orig := marshal(t, h)
	for i := range orig {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(orig)
			b[i] ^= mask
			if got, err := ParseHeader(b); err == nil {
				t.Fatalf("byte %d ^ %#02x: ParseHeader accepted %+v", i, mask, got)
			}
		}
	}
}

// TestResignedFlipCaught models an attacker who recomputes the unkeyed
// checksum after changing a byte: ParseHeader or Authenticate must refuse,
// or the header must mean exactly the same; never silently different.
func TestResignedFlipCaught(t *testing.T) {
	h, pub := signedHeader(t)
	orig := marshal(t, h)
	for i := 0; i < offChecksum; i++ {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(orig)
			b[i] ^= mask
			rechecksum(b)
			got, err := ParseHeader(b)
			if err != nil {
				continue
			}
			if ok, err := got.Authenticate([]ed25519.PublicKey{pub}); err != nil || !ok {
				continue
			}
			if !reflect.DeepEqual(got, h) {
				t.Fatalf("byte %d ^ %#02x: accepted and authenticated a different header %+v", i, mask, got)
			}
		}
	}
}

// FuzzParseHeader feeds arbitrary bytes, and the same bytes with a valid
// checksum so that the fuzzer reaches the field checks behind it.
func FuzzParseHeader(f *testing.F) {
	signed, _ := signedHeader(f)
	f.Add(marshal(f, testHeader()))
	f.Add(marshal(f, signed))
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkCanonical(t, b)
		if len(b) == HeaderSize {
			b = bytes.Clone(b)
			rechecksum(b)
			checkCanonical(t, b)
		}
	})
}

// checkCanonical parses b and, if accepted, insists that b is the one
// encoding of what was parsed.
func checkCanonical(t *testing.T, b []byte) {
	h, err := ParseHeader(b)
	if err != nil {
		return
	}
	again, err := h.MarshalBinary()
	if err != nil {
		t.Fatalf("ParseHeader accepted a header MarshalBinary refuses: %v", err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("MarshalBinary(ParseHeader(b)) differs from b")
	}
	_, pub := testKey(2)
	if ok, err := h.Authenticate([]ed25519.PublicKey{pub}); ok || err == nil {
		t.Fatalf("Authenticate with an unrelated key = %v, %v; want an error", ok, err)
	}
}

// TestRollbackIndexSigned: the rollback index is in the signed bytes, so
// lowering it breaks the signature; it round-trips at its documented offset.
func TestRollbackIndexSigned(t *testing.T) {
	priv, pub := testKey(1)
	h := testHeader()
	h.RollbackIndex = 7
	if err := h.Sign(priv); err != nil {
		t.Fatal(err)
	}
	b := marshal(t, h)
	if got := binary.LittleEndian.Uint64(b[184:]); got != 7 {
		t.Fatalf("rollback index at byte 184: %d, want 7", got)
	}
	got, err := ParseHeader(b)
	if err != nil || got.RollbackIndex != 7 {
		t.Fatalf("ParseHeader: %+v, %v", got, err)
	}
	binary.LittleEndian.PutUint64(b[offRollback:], 3)
	rechecksum(b)
	lowered, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := lowered.Authenticate([]ed25519.PublicKey{pub}); ok || err == nil {
		t.Fatalf("a header whose rollback index was lowered authenticated: %v, %v", ok, err)
	}
}
