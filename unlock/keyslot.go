// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"crypto/aes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/xts"
	"golang.org/x/sys/unix"
)

// errWrongKey is a key slot the key does not open.
var errWrongKey = errors.New("the key does not open this key slot")

// hashFunc returns the hash LUKS2 names name.
func hashFunc(name string) (func() hash.Hash, error) {
	switch name {
	case "sha1":
		return sha1.New, nil
	case "sha256":
		return sha256.New, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("hash %q is not supported, expected sha1, sha256 or sha512", clip(name))
}

// freeMemory returns the bytes of memory free for the Argon2 KDF; tests
// replace it.
var freeMemory = sysinfoFreeMemory

// sysinfoFreeMemory is free memory and buffers, as the kernel counts them.
func sysinfoFreeMemory() (uint64, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0, err
	}
	unit := uint64(max(si.Unit, 1))
	return (uint64(si.Freeram) + uint64(si.Bufferram)) * unit, nil
}

// memoryHeadroom is memory left to the rest of the system while Argon2
// runs, beyond what the kernel keeps for itself (kernelReserve).
const memoryHeadroom = 16 << 20

// kernelReserve is the free memory Argon2 must leave to the kernel: the
// zones' high watermark, one and a half times vm.min_free_kbytes (the min
// watermark is the line below which a user allocation that finds nothing
// to reclaim ends in the OOM killer; low and high are 1.25 and 1.5 times
// it). Argon2 allocating past it, with nothing in the initramfs to reclaim
// and no swap, would not fail: the OOM killer never picks PID 1, so the
// kernel panics ("System is deadlocked on memory"), the same at every boot
// and on every passphrase, the right one included — a key slot a hostile
// header sized to leave 16 MiB free did exactly that. Above the high
// watermark kswapd does not even wake. Tests replace it.
var kernelReserve = minFreeReserve

// minFreeReserve is 1.5 times vm.min_free_kbytes; 96 MiB when it cannot be
// read (x86-64 machines with transparent huge pages have 66 MiB).
func minFreeReserve() uint64 {
	if b, err := os.ReadFile("/proc/sys/vm/min_free_kbytes"); err == nil {
		if kb, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			return 3 * kb << 10 / 2
		}
	}
	return 96 << 20
}

// openKeyslot recovers the volume key from key slot k of the device r of
// size bytes with secret, and checks it against the digests of m. It
// returns errWrongKey when secret does not open the slot.
//
// Every key derivation (the slot's KDF, the digest's PBKDF2) is charged to
// budget first (nil: unbounded); an ErrKDFBudget error means it was not run.
func openKeyslot(r io.ReaderAt, size int64, m *metadata, k *keyslot, secret []byte, budget *KDFBudget) ([]byte, error) {
	if k.err != nil {
		return nil, k.err
	}
	var digests []digest
	for _, d := range m.digests {
		if slices.Contains(d.keyslots, k.id) && slices.Contains(d.segments, m.segment.id) {
			digests = append(digests, d)
		}
	}
	if len(digests) == 0 {
		return nil, fmt.Errorf("no digest of the data segment covers this key slot")
	}
	n := k.splitSize()
	if size < 0 || k.area.offset > uint64(size) || n > uint64(size)-k.area.offset {
		return nil, fmt.Errorf("the keyslot area (%d bytes at byte %d) goes past the end of the device (%d bytes)", n, k.area.offset, size)
	}
	// A slot the memory cannot run is refused before it is charged: it
	// used to spend its whole cost on nothing.
	room, err := kdfMemory(k)
	if err != nil {
		return nil, err
	}
	if err := budget.charge(fmt.Sprintf("key slot %d (%s)", k.id, clip(k.kdf.typ)), kdfCost(k)); err != nil {
		return nil, err
	}
	areaKey, err := deriveKey(k, secret, room)
	if err != nil {
		return nil, err
	}
	defer clear(areaKey)
	split := make([]byte, n)
	defer clear(split)
	if _, err := r.ReadAt(split, int64(k.area.offset)); err != nil {
		return nil, fmt.Errorf("reading the keyslot area: %w", eofIsShort(err))
	}
	c, err := xts.NewCipher(aes.NewCipher, areaKey)
	if err != nil {
		return nil, fmt.Errorf("keyslot area cipher: %w", err)
	}
	// The area is encrypted in 512-byte sectors numbered from its start
	// (plain64 IVs).
	for s := uint64(0); s*512 < n; s++ {
		sec := split[s*512 : (s+1)*512]
		c.Decrypt(sec, sec, s)
	}
	h, _ := hashFunc(k.af.hash)
	key := afMerge(split[:k.keySize*k.af.stripes], k.keySize, k.af.stripes, h)
	for _, d := range digests {
		ok, err := checkDigest(d, key, budget)
		if err != nil {
			clear(key)
			return nil, err
		}
		if ok {
			return key, nil
		}
	}
	clear(key)
	return nil, errWrongKey
}

// kdfMemory checks that the memory free now can run k's KDF (Argon2's
// memory, the headroom and what the kernel keeps), and says whether it
// has room for a second copy too (hugePagesFor). PBKDF2 needs none.
func kdfMemory(k *keyslot) (roomForTwo bool, err error) {
	if k.kdf.typ != "argon2i" && k.kdf.typ != "argon2id" {
		return false, nil
	}
	need := uint64(k.kdf.memory) << 10
	free, err := freeMemory()
	if err != nil {
		return false, fmt.Errorf("argon2 needs %d MiB: finding free memory: %w", need>>20, err)
	}
	reserve := kernelReserve()
	if need+memoryHeadroom+reserve > free {
		return false, fmt.Errorf("argon2 needs %d MiB of memory, only %d MiB are free, %d MiB of them kept by the kernel", need>>20, free>>20, reserve>>20)
	}
	return 2*need+memoryHeadroom+reserve <= free, nil
}

// deriveKey derives the key of k's keyslot area from secret with k's KDF,
// once kdfMemory has passed it.
func deriveKey(k *keyslot, secret []byte, roomForTwo bool) ([]byte, error) {
	n := k.area.keySize
	switch k.kdf.typ {
	case "pbkdf2":
		h, err := hashFunc(k.kdf.hash)
		if err != nil {
			return nil, err
		}
		return pbkdf2.Key(secret, k.kdf.salt, int(k.kdf.iterations), n, h), nil
	case "argon2i", "argon2id":
		// Give the memory back at once: PID 1 must not hold a second
		// copy while the next key slot or passphrase is tried.
		defer debug.FreeOSMemory()
		hugePagesFor(k.kdf.memory, uint8(k.kdf.cpus), roomForTwo)
		if k.kdf.typ == "argon2i" {
			return argon2.Key(secret, k.kdf.salt, k.kdf.time, k.kdf.memory, uint8(k.kdf.cpus), uint32(n)), nil
		}
		return argon2.IDKey(secret, k.kdf.salt, k.kdf.time, k.kdf.memory, uint8(k.kdf.cpus), uint32(n)), nil
	}
	return nil, fmt.Errorf("KDF %q is not supported", clip(k.kdf.typ))
}

// afMerge undoes the LUKS anti-forensic split of a keySize-byte key into
// stripes stripes: each stripe but the last is XORed into a buffer that
// is diffused with h after each; the last stripe XORed in gives the key.
func afMerge(split []byte, keySize, stripes int, h func() hash.Hash) []byte {
	key := make([]byte, keySize)
	for i := 0; i < stripes; i++ {
		subtle.XORBytes(key, key, split[i*keySize:(i+1)*keySize])
		if i < stripes-1 {
			diffuse(key, h())
		}
	}
	return key
}

// diffuse replaces each digest-sized block of b, numbered i from 0, with
// the hash of i (4 bytes, big-endian) and the block; a short last block
// takes the first bytes of its hash.
func diffuse(b []byte, h hash.Hash) {
	var iv [4]byte
	sum := make([]byte, 0, h.Size())
	for i, off := uint32(0), 0; off < len(b); i, off = i+1, off+h.Size() {
		end := min(off+h.Size(), len(b))
		h.Reset()
		binary.BigEndian.PutUint32(iv[:], i)
		h.Write(iv[:])
		h.Write(b[off:end])
		sum = h.Sum(sum[:0])
		copy(b[off:end], sum)
	}
	clear(sum[:cap(sum)])
}

// checkDigest tells whether key matches digest d, in constant time, after
// charging its PBKDF2 to budget.
func checkDigest(d digest, key []byte, budget *KDFBudget) (bool, error) {
	h, err := hashFunc(d.hash)
	if err != nil {
		return false, nil
	}
	if err := budget.charge("the volume key digest", pbkdf2Cost(uint64(d.iterations), len(d.sum), h().Size())); err != nil {
		return false, err
	}
	sum := pbkdf2.Key(key, d.salt, int(d.iterations), len(d.sum), h)
	return subtle.ConstantTimeCompare(sum, d.sum) == 1, nil
}
