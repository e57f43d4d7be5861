// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"errors"
	"fmt"
	"sync"
)

// ErrKDFBudget is wrapped by the error for a key slot not tried because the
// boot's key-derivation budget (KDFBudget) would be exceeded. It does not
// wrap ErrNoKeySlot: Prompt stops at once instead of asking again.
var ErrKDFBudget = errors.New("key derivation budget of this boot is spent")

// DefaultKDFBudget is the key-derivation work a boot may spend, in KDF
// units (see kdfCost): 2²⁹, about 32 tries of a key slot made by
// cryptsetup at its default cost (2 s on the machine that formatted it),
// so 3 passphrases over a few key slots fit, while a hostile header with
// 32 key slots at the maximum cost stops after minutes, not hours.
const DefaultKDFBudget = 1 << 29

// argon2Unit is the cost of one KiB × pass of Argon2 in KDF units, where
// one PBKDF2 iteration over one hash block is 1: Argon2 fills a KiB about
// as fast as PBKDF2-SHA256 does four iterations.
const argon2Unit = 4

// KDFBudget bounds the key derivation of one boot, across volumes, key
// slots, keys and tries: every derivation is charged before it runs, and
// one that would exceed what is left is not run. A nil *KDFBudget is
// unbounded. It is safe for concurrent use.
type KDFBudget struct {
	mu          sync.Mutex
	total, left uint64
	progress    func()
}

// SetProgress has f called before each derivation the budget allows: a
// boot's progress, which a derivation of seconds is (init's stall notice).
func (b *KDFBudget) SetProgress(f func()) {
	b.mu.Lock()
	b.progress = f
	b.mu.Unlock()
}

// NewKDFBudget returns a budget of units KDF units.
func NewKDFBudget(units uint64) *KDFBudget {
	return &KDFBudget{total: units, left: units}
}

// Left is what the budget has left.
func (b *KDFBudget) Left() uint64 {
	if b == nil {
		return ^uint64(0)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.left
}

// charge takes cost units for what, or returns an ErrKDFBudget error
// naming it and takes nothing. A cost over the whole budget, which no
// boot could ever pay, is a fault of that key slot alone (an error that
// does not wrap ErrKDFBudget): the other slots are still tried. It stopped
// the unlock, and a volume whose first slot cost that much never opened,
// whatever key a later slot held (found by a hunting helper).
func (b *KDFBudget) charge(what string, cost uint64) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	if cost > b.total {
		defer b.mu.Unlock()
		return fmt.Errorf("%s needs %d KDF units, more than a boot's whole budget of %d: not tried", what, cost, b.total)
	}
	if cost > b.left {
		defer b.mu.Unlock()
		return fmt.Errorf("%w: %s needs %d KDF units, %d of the %d are left (a damaged or hostile header, or too many tries)", ErrKDFBudget, what, cost, b.left, b.total)
	}
	b.left -= cost
	progress := b.progress
	b.mu.Unlock()
	if progress != nil {
		progress()
	}
	return nil
}

// pbkdf2Cost is the work of PBKDF2 with iterations giving keyLen bytes
// with a hash of hashLen bytes: each output block runs every iteration.
func pbkdf2Cost(iterations uint64, keyLen, hashLen int) uint64 {
	blocks := uint64((keyLen + hashLen - 1) / max(hashLen, 1))
	return iterations * max(blocks, 1)
}

// kdfCost is the work of deriving k's area key, in KDF units; 0 for a KDF
// keel does not run (deriveKey refuses it).
func kdfCost(k *keyslot) uint64 {
	switch k.kdf.typ {
	case "pbkdf2":
		h, err := hashFunc(k.kdf.hash)
		if err != nil {
			return 0
		}
		return pbkdf2Cost(uint64(k.kdf.iterations), k.area.keySize, h().Size())
	case "argon2i", "argon2id":
		return uint64(k.kdf.time) * uint64(k.kdf.memory) * argon2Unit
	}
	return 0
}
