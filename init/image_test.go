// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
)

// TestUnsignedRollbackIndex: a header's rollback index counts (checked
// against the floor, reported for mark-good to raise the floor to) only
// when a trusted key signed it for the root hash that boots. On a locked
// initramfs trusting a baked roothash= and no keys, anyone who writes the
// inactive slot could set it to 2^64-1 beside the right image bytes: the
// report carried it, mark-good raised the floor to it, and the locked init
// then refused every later image (found by a hunting helper).
func TestUnsignedRollbackIndex(t *testing.T) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signedRoot := bytes.Repeat([]byte{0xcd}, 32)
	other := hex.EncodeToString(bytes.Repeat([]byte{0xab}, 32))
	header := func(index uint64, sign bool) []byte {
		h := &slots.Header{
			ImageID: "v2", Created: time.Unix(1, 0), ImageSize: 4096,
			Verity:     verity.Params{HashAlg: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 1},
			HashOffset: 4096, HashSize: uint64(verity.HashDeviceSize(verity.Params{DataBlocks: 1})),
			RootHash: signedRoot, RollbackIndex: index,
		}
		if sign {
			if err := h.Sign(key); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	pub := key.Public().(ed25519.PublicKey)
	for _, tc := range []struct {
		name     string
		raw      []byte
		keys     bool
		roothash string // baked and on the command line
		typed    string // on the command line only (unlocked)
		signed   bool   // the index counts
		unlocked bool
	}{
		{name: "signed", raw: header(7, true), keys: true, signed: true},
		{name: "signed-baked-same-hash", raw: header(7, true), keys: true, roothash: hex.EncodeToString(signedRoot), signed: true},
		{name: "signed-baked-other-hash", raw: header(7, true), keys: true, roothash: other},
		{name: "signed-typed-other-hash", raw: header(7, true), keys: true, typed: other, unlocked: true},
		{name: "no-keys-baked-hash", raw: header(math.MaxUint64, false), roothash: other},
		{name: "no-keys-unlocked", raw: header(math.MaxUint64, false), unlocked: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			st := bootstate.State{RollbackFloor: 9}
			b := &boot{log: newLogger(&log), rep: &report.Report{}, baked: &bakedconf.Config{Locked: !tc.unlocked},
				bs: &bootState{store: bootstate.NewMemStore(bootstate.BootStateMinSize), state: st}}
			if tc.keys {
				b.baked.TrustedKeys = [][]byte{pub}
			}
			b.cfg.RootHash = tc.roothash + tc.typed
			b.base.RootHash = tc.roothash
			img, err := b.headerImage("verity-b", "/dev/data", "/dev/hash", tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.checkAuthenticated(img); err != nil {
				t.Fatalf("not accepted: %v", err)
			}
			if img.rollbackSigned != tc.signed {
				t.Errorf("rollbackSigned = %v, want %v", img.rollbackSigned, tc.signed)
			}
			err = b.imageRollback("verity-b", img)
			switch {
			case tc.signed && (err == nil || !strings.Contains(err.Error(), "rollback index 7 is below this machine's floor 9")):
				t.Errorf("a signed index below the floor on a locked init: %v, want refused naming both", err)
			case !tc.signed && err != nil:
				t.Errorf("an unsigned index: %v, want neither checked nor refused", err)
			case !tc.signed && !strings.Contains(log.String(), "not signed by a trusted key for the root hash in use"):
				t.Errorf("an unsigned index is not named: %q", log.String())
			}
			if got, want := img.signedRollback(), map[bool]uint64{true: 7}[tc.signed]; got != want {
				t.Errorf("reported rollback index %d, want %d", got, want)
			}
		})
	}
}
