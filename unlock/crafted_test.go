// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// putHeader writes a copy of a LUKS2 header into dev at byte at: a
// binary header of hdrSize bytes with seqID, then the JSON area js, and a
// valid checksum.
func putHeader(dev []byte, at, hdrSize int, seqID uint64, js string) {
	h := dev[at : at+hdrSize]
	clear(h)
	copy(h, Magic)
	if at != 0 {
		copy(h, secondaryMagic)
	}
	binary.BigEndian.PutUint16(h[offVersion:], 2)
	binary.BigEndian.PutUint64(h[offHdrSize:], uint64(hdrSize))
	binary.BigEndian.PutUint64(h[offSeqID:], seqID)
	copy(h[offCsumAlg:], "sha256")
	copy(h[offUUID:], "01234567-89ab-cdef-0123-456789abcdef")
	binary.BigEndian.PutUint64(h[offHdrOffset:], uint64(at))
	copy(h[binHeaderSize:], js)
	sealCopy(h)
}

// sealCopy writes the checksum of h, one copy of a LUKS2 header (its
// hdr_size bytes): the SHA-256 of h with its checksum field zeroed.
func sealCopy(h []byte) {
	clear(h[offCsum : offCsum+lenCsum])
	sum := sha256.Sum256(h)
	copy(h[offCsum:], sum[:])
}

// craftLUKS2 writes a 64 KiB device with only a primary header of 16 KiB
// holding the JSON area js, with a valid checksum unless badSum.
func craftLUKS2(t *testing.T, js string, badSum bool) string {
	t.Helper()
	dev := make([]byte, 64<<10)
	putHeader(dev, 0, 16<<10, 1, js)
	if badSum {
		dev[offCsum] ^= 1
	}
	p := filepath.Join(t.TempDir(), "luks")
	must(t, os.WriteFile(p, dev, 0o600))
	return p
}

// minimalJSON is the JSON area of a 16 KiB header without key slots.
const minimalJSON = `{"keyslots":{},"tokens":{},"digests":{},
	"segments":{"0":{"type":"crypt","offset":"32768","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512}},
	"config":{"json_size":"12288","keyslots_size":"0"}}`

func TestOpenDamagedHeaders(t *testing.T) {
	noNUL := strings.Repeat(" ", 16384-4096)
	short := filepath.Join(t.TempDir(), "short")
	must(t, os.WriteFile(short, []byte("LUKS\xba\xbe\x00\x02"), 0o600))
	luks1 := filepath.Join(t.TempDir(), "luks1")
	must(t, os.WriteFile(luks1, append([]byte("LUKS\xba\xbe\x00\x01"), make([]byte, 1024)...), 0o600))
	zeros := filepath.Join(t.TempDir(), "zeros")
	must(t, os.WriteFile(zeros, make([]byte, 1<<20), 0o600))
	for _, tc := range []struct {
		name, dev, err string
	}{
		{name: "json without NUL", dev: craftLUKS2(t, noNUL, false), err: "primary header at byte 0: the JSON area (12288 bytes) has no terminating NUL; no secondary header at any of bytes 16384 to 4194304"},
		{name: "bad checksum", dev: craftLUKS2(t, minimalJSON, true), err: "no valid LUKS2 header: primary header at byte 0: checksum mismatch"},
		{name: "bad json", dev: craftLUKS2(t, "{", false), err: "primary header at byte 0: JSON metadata: "},
		{name: "json not an object", dev: craftLUKS2(t, "[]", false), err: "JSON metadata: top level: expected an object, found array"},
		{name: "no config", dev: craftLUKS2(t, `{"keyslots":{},"digests":{},"segments":{}}`, false), err: "JSON metadata: config: missing"},
		{name: "no key slots", dev: craftLUKS2(t, minimalJSON, false), err: "no key slot matches the key file: the header has no active key slot"},
		{name: "truncated", dev: short, err: "no valid LUKS2 header: primary header at byte 0: the device (8 bytes) ends before the header's 4096 bytes; no secondary header"},
		{name: "zeros", dev: zeros, err: `no valid LUKS2 header: primary header at byte 0: no LUKS2 header magic: expected "LUKS\xba\xbe", found "\x00\x00\x00\x00\x00\x00"; no secondary header at any of bytes 16384 to 4194304`},
		{name: "luks1", dev: luks1, err: "LUKS1 is not supported, expected LUKS2"},
		{name: "not luks", dev: "/dev/null", err: "primary header at byte 0: reading it: the device ends inside the header"},
		{name: "missing", dev: "/nonexistent", err: "no such file or directory"},
	} {
		var fm fakeMapper
		o := Opener{Role: "data", DevDir: t.TempDir(), Mapper: &fm}
		_, err := o.Open(tc.dev, "keel-data", Key{Secret: []byte("k"), Kind: KeyFile})
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "data (") {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
		if tc.name == "no key slots" != errors.Is(err, ErrNoKeySlot) {
			t.Errorf("%s: ErrNoKeySlot is %v", tc.name, errors.Is(err, ErrNoKeySlot))
		}
		if len(fm.created) != 0 {
			t.Errorf("%s: mapped %v", tc.name, fm.created)
		}
	}
}

// rewriteJSON changes the JSON metadata of the LUKS2 volume img with edit
// and writes both header copies back with valid checksums.
func rewriteJSON(t *testing.T, img string, edit func(m map[string]any)) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	dev := make([]byte, 2*maxHdrSize)
	n, err := f.ReadAt(dev, 0)
	if n < binHeaderSize {
		t.Fatal(err)
	}
	hdrSize := int(binary.BigEndian.Uint64(dev[offHdrSize:]))
	seq := binary.BigEndian.Uint64(dev[offSeqID:])
	area := dev[binHeaderSize:hdrSize]
	var m map[string]any
	must(t, json.Unmarshal([]byte(cString(area)), &m))
	edit(m)
	js, err := json.Marshal(m)
	must(t, err)
	if len(js) >= hdrSize-binHeaderSize {
		t.Fatalf("JSON of %d bytes does not fit", len(js))
	}
	putHeader(dev, 0, hdrSize, seq, string(js))
	putHeader(dev, hdrSize, hdrSize, seq, string(js))
	_, err = f.WriteAt(dev[:2*hdrSize], 0)
	must(t, err)
}

// set sets the value at path ("keyslots.0.kdf.memory") in m, or deletes
// it when v is del.
func set(m map[string]any, path string, v any) {
	names := strings.Split(path, ".")
	for _, n := range names[:len(names)-1] {
		m = m[n].(map[string]any)
	}
	if v == del {
		delete(m, names[len(names)-1])
		return
	}
	m[names[len(names)-1]] = v
}

var del = new(int)

// TestHostileMetadata feeds metadata with valid checksums but hostile or
// unsupported values: each is an error naming the field, never a panic,
// a huge allocation or a mapped device.
func TestHostileMetadata(t *testing.T) {
	const secret = "hostile"
	keyFile := writeKey(t, secret)
	base, err := os.ReadFile(luksVolume(t, keyFile, pbkdf2Opts...))
	must(t, err)
	argon2Base, err := os.ReadFile(luksVolume(t, keyFile, "--pbkdf", "argon2id", "--pbkdf-memory", "64", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1"))
	must(t, err)
	freeMemory = func() (uint64, error) { return 256 << 20, nil }
	kernelReserve = func() uint64 { return 3 * 66 << 20 / 2 } // 1.5 × the min_free_kbytes of an x86-64 machine with THP
	t.Cleanup(func() { freeMemory, kernelReserve = sysinfoFreeMemory, minFreeReserve })
	slot := func(field string, v any) func(m map[string]any) {
		return func(m map[string]any) { set(m, "keyslots.0."+field, v) }
	}
	seg := func(field string, v any) func(m map[string]any) {
		return func(m map[string]any) { set(m, "segments.0."+field, v) }
	}
	for _, tc := range []struct {
		name   string
		argon2 bool
		edit   func(m map[string]any)
		err    string
		noSlot bool // the error is ErrNoKeySlot: a key slot was unusable
	}{
		// Argon2 costs.
		{name: "argon2 memory 1 TiB", argon2: true, edit: slot("kdf.memory", float64(1<<30)), noSlot: true,
			err: "key slot 0: keyslots.0.kdf.memory: expected an integer from 8 to 4194304, found 1.073741824e+09"},
		{name: "argon2 memory more than free", argon2: true, edit: slot("kdf.memory", 4<<20), noSlot: true,
			err: "key slot 0: argon2 needs 4096 MiB of memory, only 256 MiB are free, 99 MiB of them kept by the kernel"},
		// A slot sized to leave 16 MiB free: past the kernel's watermarks,
		// where the allocation ends in a kernel panic, not an error.
		{name: "argon2 memory into the kernel's reserve", argon2: true, edit: slot("kdf.memory", 200<<10), noSlot: true,
			err: "key slot 0: argon2 needs 200 MiB of memory, only 256 MiB are free, 99 MiB of them kept by the kernel"},
		{name: "argon2 memory below 8 KiB per thread", argon2: true, edit: slot("kdf.cpus", 16), noSlot: true,
			err: "keyslots.0.kdf.memory: expected an integer from 128 to 4194304, found 64"},
		{name: "argon2 no cpus", argon2: true, edit: slot("kdf.cpus", 0), noSlot: true,
			err: "keyslots.0.kdf.cpus: expected an integer from 1 to 255, found 0"},
		{name: "argon2 time 0", argon2: true, edit: slot("kdf.time", 0), noSlot: true,
			err: "keyslots.0.kdf.time: expected an integer from 1 to 4294967295, found 0"},
		{name: "argon2 too much work", argon2: true, edit: slot("kdf.time", float64(1<<31)), noSlot: true,
			err: "keyslots.0.kdf: time 2147483648 × memory 64 KiB is more than the 4294967296 KiB of work keel allows"},
		{name: "argon2 fractional time", argon2: true, edit: slot("kdf.time", 4.5), noSlot: true,
			err: "keyslots.0.kdf.time: expected an integer from 1 to 4294967295, found 4.5"},
		{name: "argon2 salt not base64", argon2: true, edit: slot("kdf.salt", "!!"), noSlot: true,
			err: "keyslots.0.kdf.salt: expected a base64 string: "},
		{name: "argon2 salt a number", argon2: true, edit: slot("kdf.salt", 5), noSlot: true,
			err: "keyslots.0.kdf.salt: expected a base64 string, found number"},
		// PBKDF2.
		{name: "pbkdf2 iterations 0", edit: slot("kdf.iterations", 0), noSlot: true,
			err: "keyslots.0.kdf.iterations: expected an integer from 1 to 2147483647, found 0"},
		{name: "pbkdf2 negative iterations", edit: slot("kdf.iterations", -1000), noSlot: true,
			err: "keyslots.0.kdf.iterations: expected an integer from 1 to 2147483647, found -1000"},
		{name: "pbkdf2 whirlpool", edit: slot("kdf.hash", "whirlpool"), noSlot: true,
			err: `keyslots.0.kdf.hash: hash "whirlpool" is not supported, expected sha1, sha256 or sha512`},
		{name: "kdf scrypt", edit: slot("kdf.type", "scrypt"), noSlot: true,
			err: `keyslots.0.kdf.type: KDF "scrypt" is not supported, expected pbkdf2, argon2i or argon2id`},
		{name: "kdf missing", edit: slot("kdf", del), noSlot: true, err: "keyslots.0.kdf: missing"},
		// Anti-forensic split.
		{name: "stripes 0", edit: slot("af.stripes", 0), noSlot: true,
			err: "keyslots.0.af.stripes: expected an integer from 1 to 65536, found 0"},
		{name: "stripes huge", edit: slot("af.stripes", 1e15), noSlot: true,
			err: "keyslots.0.af.stripes: expected an integer from 1 to 65536, found 1e+15"},
		{name: "stripes beyond the area", edit: slot("af.stripes", 65536), noSlot: true,
			err: "keyslots.0: 65536 stripes of the 64-byte key take 4194304 bytes, more than the 258048-byte area"},
		{name: "af hash sha3", edit: slot("af.hash", "sha3-256"), noSlot: true,
			err: `keyslots.0.af.hash: hash "sha3-256" is not supported`},
		{name: "af type", edit: slot("af.type", "luks3"), noSlot: true,
			err: `keyslots.0.af.type: anti-forensic splitter "luks3" is not supported, expected luks1`},
		// Key sizes.
		{name: "key size 48", edit: slot("key_size", 48), noSlot: true,
			err: "keyslots.0.key_size: 48 bytes, expected 32 or 64 for aes-xts-plain64"},
		{name: "key size 0", edit: slot("key_size", 0), noSlot: true,
			err: "keyslots.0.key_size: expected an integer from 1 to 512, found 0"},
		{name: "area key size 16", edit: slot("area.key_size", 16), noSlot: true,
			err: "keyslots.0.area.key_size: 16 bytes, expected 32 or 64 for aes-xts-plain64"},
		{name: "area key size a string", edit: slot("area.key_size", "64"), noSlot: true,
			err: "keyslots.0.area.key_size: expected an integer from 1 to 512, found string"},
		// Keyslot areas.
		{name: "area cipher serpent", edit: slot("area.encryption", "serpent-xts-plain64"), noSlot: true,
			err: `keyslots.0.area.encryption: cipher "serpent-xts-plain64" is not supported for keyslot areas, expected aes-xts-plain64`},
		{name: "area offset negative", edit: slot("area.offset", "-32768"), noSlot: true,
			err: `keyslots.0.area.offset: expected a decimal number in a string from 0 to 2^64-1, found "-32768"`},
		{name: "area offset overflowing", edit: slot("area.offset", "18446744073709551616"), noSlot: true,
			err: `keyslots.0.area.offset: expected a decimal number in a string from 0 to 2^64-1, found "18446744073709551616"`},
		{name: "area offset a number", edit: slot("area.offset", 32768), noSlot: true,
			err: "keyslots.0.area.offset: expected a decimal number in a string, found number"},
		{name: "area wrapping around", edit: slot("area.size", "18446744073709518848"), noSlot: true,
			err: "keyslots.0.area: 18446744073709518848 bytes at byte 32768, expected whole sectors within the keyslots area, bytes 32768 to 16777216"},
		{name: "area beyond the keyslots area", edit: slot("area.offset", "16777216"), noSlot: true,
			err: "keyslots.0.area: 258048 bytes at byte 16777216, expected whole sectors within the keyslots area"},
		{name: "area beyond the device", edit: func(m map[string]any) {
			set(m, "config.keyslots_size", "134217728")
			set(m, "keyslots.0.area.offset", "100663296")
			set(m, "segments.0.offset", "134250496")
			set(m, "segments.0.size", "4096")
		}, err: "segments.0: 4096 bytes of data at byte 134250496 go past the end of the device (20971520 bytes)"},
		{name: "keyslots area over the data", edit: func(m map[string]any) {
			set(m, "config.keyslots_size", "134217728")
			set(m, "keyslots.0.area.offset", "100663296")
		}, err: "segments.0.offset: 16777216, expected at least 134250496: the data begin after both copies of the header and the keyslots area"},
		{name: "keyslots area too large", edit: func(m map[string]any) { set(m, "config.keyslots_size", "1099511627776") },
			err: "config.keyslots_size: 1099511627776 bytes, expected at most 134217728"},
		// Data segments.
		{name: "segment offset overflowing", edit: seg("offset", "18446744073709551104"),
			err: "segments.0: 0 bytes of data at byte 18446744073709551104 go past the end of the device"},
		{name: "segment size overflowing", edit: seg("size", "18446744073709547520"),
			err: "segments.0: 18446744073709547520 bytes of data at byte 16777216 go past the end of the device"},
		{name: "segment offset unaligned", edit: seg("offset", "16777217"), err: "segments.0.offset: 16777217 is not a multiple of 512"},
		{name: "segment size not a size", edit: seg("size", "lots"),
			err: `segments.0.size: expected a decimal number in a string from 0 to 2^64-1, found "lots" or "dynamic"`},
		{name: "segment size 0", edit: seg("size", "0"), err: "segments.0.size: 0 bytes, expected a non-zero multiple of the 4096-byte sector"},
		{name: "segment sector size 1000", edit: seg("sector_size", 1000), err: "segments.0.sector_size: 1000, expected 512, 1024, 2048 or 4096"},
		{name: "segment cipher with a space", edit: seg("encryption", "aes-xts-plain64 0"),
			err: `segments.0.encryption: cipher "aes-xts-plain64 0" is not supported for the data segment, expected aes-xts-plain64`},
		// A header is not authenticated by the passphrase: a cipher that
		// ignores the key, or a key count that leaves each key empty,
		// would map chosen plaintext behind the owner's passphrase.
		// The offset moved D sectors on and the IV tweak set to D: each
		// mapped sector would be the owner's sector D on, decrypted right,
		// so a file a user wrote there would be the volume.
		{name: "segment shifted with an IV tweak", edit: func(m map[string]any) {
			set(m, "segments.0.offset", "16809984")
			set(m, "segments.0.iv_tweak", "64")
		}, err: "segments.0.iv_tweak: 64, expected 0"},
		{name: "segment IV tweak alone", edit: seg("iv_tweak", "1"), err: "segments.0.iv_tweak: 1, expected 0"},
		{name: "segment cipher null", edit: seg("encryption", "cipher_null-ecb"),
			err: `segments.0.encryption: cipher "cipher_null-ecb" is not supported for the data segment, expected aes-xts-plain64`},
		{name: "segment cipher null, key count", edit: seg("encryption", "cipher_null:128-ecb"),
			err: `segments.0.encryption: cipher "cipher_null:128-ecb" is not supported for the data segment`},
		{name: "segment cipher null, kernel API", edit: seg("encryption", "capi:ecb(cipher_null)-plain"),
			err: `segments.0.encryption: cipher "capi:ecb(cipher_null)-plain" is not supported for the data segment`},
		{name: "segment cipher aes, key count", edit: seg("encryption", "aes:64-xts-plain64"),
			err: `segments.0.encryption: cipher "aes:64-xts-plain64" is not supported for the data segment`},
		{name: "segment cipher serpent", edit: seg("encryption", "serpent-xts-plain64"),
			err: `segments.0.encryption: cipher "serpent-xts-plain64" is not supported for the data segment`},
		// The data must not overlap what anyone can write in the clear.
		{name: "segment over the keyslots area", edit: seg("offset", "1048576"),
			err: "segments.0.offset: 1048576, expected at least 16777216: the data begin after both copies of the header and the keyslots area"},
		{name: "segment over the header", edit: seg("offset", "0"),
			err: "segments.0.offset: 0, expected at least 16777216"},
		{name: "segment integrity", edit: seg("integrity", map[string]any{"type": "hmac(sha256)"}),
			err: "segments.0.integrity: authenticated encryption (dm-integrity) is not supported"},
		{name: "segment linear", edit: seg("type", "linear"), err: `segments.0.type: "linear" segments are not supported, expected crypt`},
		{name: "two segments", edit: func(m map[string]any) { set(m, "segments.1", m["segments"].(map[string]any)["0"]) },
			err: "segments: 2 data segments, expected one (more only occur during a reencryption)"},
		{name: "segment named x", edit: func(m map[string]any) { m["segments"] = map[string]any{"x": 1} },
			err: "segments.x: expected a number from 0 to 31 as the name"},
		{name: "reencryption", edit: func(m map[string]any) {
			set(m, "config.requirements", map[string]any{"mandatory": []any{"online-reencrypt-v2"}})
		}, err: "config.requirements.mandatory: \"online-reencrypt-v2\" not supported (a reencryption is in progress: finish it with cryptsetup reencrypt first)"},
		{name: "json_size wrong", edit: func(m map[string]any) { set(m, "config.json_size", "4096") },
			err: "config.json_size: 4096, expected 12288, the JSON area of this 16384-byte header"},
		// Digests.
		{name: "digest for another slot", edit: func(m map[string]any) { set(m, "digests.0.keyslots", []any{"1"}) }, noSlot: true,
			err: "key slot 0: no digest of the data segment covers this key slot"},
		{name: "digest keyslots numbers", edit: func(m map[string]any) { set(m, "digests.0.keyslots", []any{0}) },
			err: "digests.0.keyslots.0: expected a string, found number"},
		{name: "digest empty", edit: func(m map[string]any) { set(m, "digests.0.digest", "") },
			err: "digests.0.digest: 0 bytes, expected 16 to 64"},
		{name: "digest hash md5", edit: func(m map[string]any) { set(m, "digests.0.hash", "md5") },
			err: `digests.0.hash: hash "md5" is not supported`},
		{name: "digest wrong", edit: func(m map[string]any) { set(m, "digests.0.digest", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") }, noSlot: true,
			err: "no key slot matches the key file"},
		// Key slots.
		{name: "keyslot type", edit: slot("type", "luks3"), noSlot: true, err: `keyslots.0.type: "luks3" key slots are not supported, expected luks2`},
		{name: "keyslot priority ignore", edit: slot("priority", 0), noSlot: true, err: "no key slot matches the key file: the header has no active key slot"},
		{name: "keyslot priority 3", edit: slot("priority", 3), noSlot: true, err: "keyslots.0.priority: expected an integer from 0 to 2, found 3"},
		{name: "keyslot 32", edit: func(m map[string]any) { set(m, "keyslots.32", 0) }, err: "keyslots.32: expected a number from 0 to 31 as the name"},
		{name: "keyslot not an object", edit: func(m map[string]any) { set(m, "keyslots.0", "x") }, err: "keyslots.0: expected an object, found string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img")
			b := base
			if tc.argon2 {
				b = argon2Base
			}
			// The volume past its keyslot areas is zeros: leave it sparse.
			must(t, os.WriteFile(img, b[:1<<20], 0o600))
			must(t, os.Truncate(img, int64(len(b))))
			rewriteJSON(t, img, tc.edit)
			fm := &fakeMapper{}
			o := Opener{Role: "data", DevDir: t.TempDir(), Mapper: fm}
			_, err := o.Open(img, "x", Key{Secret: []byte(secret), Kind: KeyFile})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v\nwant %q", err, tc.err)
			}
			if errors.Is(err, ErrNoKeySlot) != tc.noSlot {
				t.Errorf("ErrNoKeySlot: %v, want %v", errors.Is(err, ErrNoKeySlot), tc.noSlot)
			}
			if !tc.noSlot && !strings.Contains(err.Error(), "no valid LUKS2 header") && !strings.Contains(err.Error(), "past the end") {
				t.Errorf("a header error without the copies named: %v", err)
			}
			if len(fm.created) != 0 {
				t.Errorf("mapped %+v", fm.created)
			}
		})
	}
}

// TestMetadataOptions checks what keel takes from optional metadata: the
// flags dm-crypt gets and the order key slots are tried in.
func TestMetadataOptions(t *testing.T) {
	const secret = "options"
	keyFile := writeKey(t, secret)
	img := luksVolume(t, keyFile, pbkdf2Opts...)
	cmd := exec.Command("cryptsetup", append([]string{"luksAddKey", "-q", "--key-file", keyFile}, append(pbkdf2Opts, img, writeKey(t, "other"))...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("luksAddKey: %v\n%s", err, out)
	}
	rewriteJSON(t, img, func(m map[string]any) {
		set(m, "config.flags", []any{"allow-discards", "no-write-workqueue", "no-journal", "allow-discards", "submit-from-crypt-cpus"})
		set(m, "segments.0.size", "1048576")
	})
	fm := &fakeMapper{}
	o := Opener{DevDir: t.TempDir(), Mapper: fm}
	_, err := o.Open(img, "x", Key{Secret: []byte(secret), Kind: KeyFile})
	must(t, err)
	v := fm.created[0]
	if got := strings.Join(v.Flags, " "); got != "allow_discards no_write_workqueue submit_from_crypt_cpus" {
		t.Errorf("flags %q", got)
	}
	// Locked: the header's allow-discards is not taken (nothing
	// authenticates it); the other flags are.
	locked := &fakeMapper{}
	o = Opener{DevDir: t.TempDir(), Mapper: locked, NoDiscards: true}
	_, err = o.Open(img, "y", Key{Secret: []byte(secret), Kind: KeyFile})
	must(t, err)
	if got := strings.Join(locked.created[0].Flags, " "); got != "no_write_workqueue submit_from_crypt_cpus" {
		t.Errorf("NoDiscards: flags %q, want allow_discards left out", got)
	}
	if v.IVTweak != 0 || v.Size != 1<<20 {
		t.Errorf("iv tweak %d, size %d", v.IVTweak, v.Size)
	}
	// Both slots unusable: the error lists slot 1 first once it has
	// priority 2 (prefer), and skips slots of priority 0 (ignore).
	for _, tc := range []struct {
		prio0, prio1 any
		want         string
	}{
		{prio0: del, prio1: del, want: `(key slot 0: keyslots.0.kdf.hash: hash "md4" is not supported, expected sha1, sha256 or sha512; key slot 1: keyslots.1.kdf.hash: hash "md4"`},
		{prio0: 1.0, prio1: 2.0, want: `(key slot 1: keyslots.1.kdf.hash: hash "md4" is not supported, expected sha1, sha256 or sha512; key slot 0: keyslots.0.kdf.hash: hash "md4"`},
		{prio0: 0.0, prio1: del, want: `the key file (key slot 1: keyslots.1.kdf.hash: hash "md4" is not supported, expected sha1, sha256 or sha512)`},
	} {
		rewriteJSON(t, img, func(m map[string]any) {
			set(m, "keyslots.0.kdf.hash", "md4")
			set(m, "keyslots.1.kdf.hash", "md4")
			set(m, "keyslots.0.priority", tc.prio0)
			set(m, "keyslots.1.priority", tc.prio1)
		})
		_, err := o.Open(img, "x", Key{Secret: []byte(secret), Kind: KeyFile})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrNoKeySlot) {
			t.Errorf("priorities %v, %v: err = %v\nwant %q", tc.prio0, tc.prio1, err, tc.want)
		}
	}
}

// TestMinFreeReserve: the reserve is the kernel's high watermark, 1.5 times
// vm.min_free_kbytes as this machine's kernel has it.
func TestMinFreeReserve(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/vm/min_free_kbytes")
	if err != nil {
		t.Skip(err)
	}
	kb, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := minFreeReserve(), kb*1024*3/2; got != want {
		t.Errorf("minFreeReserve() = %d, want %d (1.5 × %d KiB)", got, want, kb)
	}
}
