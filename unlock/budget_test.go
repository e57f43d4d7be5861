// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKDFBudget: an unlock charges its key derivation to the Opener's
// budget; a budget one unit short of an unlock's cost refuses to derive
// (ErrKDFBudget, not ErrNoKeySlot, nothing mapped); wrong keys spend the
// budget too, so a budget of two tries stops the third try.
func TestKDFBudget(t *testing.T) {
	for _, name := range []string{"pbkdf2-sha512", "argon2id"} {
		t.Run(name, func(t *testing.T) {
			img := filepath.Join("testdata", name+".img")
			secret, err := os.ReadFile(filepath.Join("testdata", name+".key"))
			must(t, err)
			key := Key{Secret: secret, Kind: KeyFile}
			wrong := Key{Secret: []byte("wrong"), Kind: Passphrase}
			open := func(b *KDFBudget, k Key) (*fakeMapper, error) {
				fm := &fakeMapper{}
				o := Opener{Role: "data", DevDir: t.TempDir(), Mapper: fm, Budget: b}
				_, err := o.Open(img, "keel-data", k)
				return fm, err
			}
			const plenty = 1 << 40
			b := NewKDFBudget(plenty)
			derivations := 0
			b.SetProgress(func() { derivations++ })
			if _, err := open(b, key); err != nil {
				t.Fatal(err)
			}
			if derivations == 0 {
				t.Error("an unlock told no progress")
			}
			cost := plenty - b.Left()
			if cost == 0 {
				t.Fatal("an unlock cost nothing")
			}
			if _, err := open(NewKDFBudget(cost), key); err != nil {
				t.Errorf("a budget of exactly one unlock (%d units): %v", cost, err)
			}
			fm, err := open(NewKDFBudget(cost-1), key)
			if !errors.Is(err, ErrKDFBudget) || errors.Is(err, ErrNoKeySlot) || len(fm.created) != 0 {
				t.Errorf("a budget one unit short: err = %v, mapped %d; want ErrKDFBudget and nothing mapped", err, len(fm.created))
			}
			if err != nil && !strings.Contains(err.Error(), "data (LUKS2 "+img+"): key") {
				t.Errorf("err = %q, want it to name the volume and the key slot or digest", err)
			}
			two := NewKDFBudget(2 * cost)
			for try := 1; try <= 3; try++ {
				_, err := open(two, wrong)
				want := ErrNoKeySlot
				if try == 3 {
					want = ErrKDFBudget
				}
				if !errors.Is(err, want) {
					t.Errorf("wrong key, try %d: err = %v, want %v", try, err, want)
				}
			}
		})
	}
}

// TestPromptStopsWhenTheBudgetIsSpent: the prompt does not ask again once
// the budget is spent: a budget of one wrong try stops the second.
func TestPromptStopsWhenTheBudgetIsSpent(t *testing.T) {
	img := filepath.Join("testdata", "pbkdf2-sha512.img")
	const plenty = 1 << 40
	probe := NewKDFBudget(plenty)
	o := Opener{Role: "data", DevDir: t.TempDir(), Mapper: &fakeMapper{}, Budget: probe}
	if _, err := o.Open(img, "keel-data", Key{Secret: []byte("wrong"), Kind: Passphrase}); !errors.Is(err, ErrNoKeySlot) {
		t.Fatal(err)
	}
	o.Budget = NewKDFBudget(plenty - probe.Left())
	c := &console{in: strings.NewReader("a\nb\nc\n")}
	tries := 0
	err := Prompt(c, -1, what, 3, func(p []byte) error {
		tries++
		_, err := o.Open(img, "keel-data", Key{Secret: p, Kind: Passphrase})
		return err
	})
	if !errors.Is(err, ErrKDFBudget) || tries != 2 {
		t.Errorf("err = %v after %d tries, want ErrKDFBudget after 2", err, tries)
	}
}

// TestUnpayableSlotSkipped: a key slot that costs more than a boot's whole
// budget is a fault of that slot, named, and the other slots are still
// tried: the volume opens with the key of slot 1 at every boot. It
// stopped the unlock as a spent budget, with the whole budget left, and
// the volume never opened (found by a hunting helper). A slot the memory
// cannot run is refused before it is charged: it spent its cost on
// nothing.
func TestUnpayableSlotSkipped(t *testing.T) {
	first := writeKey(t, "first")
	img := luksVolume(t, first, pbkdf2Opts...)
	second := writeKey(t, "second")
	cmd := exec.Command("cryptsetup", append([]string{"luksAddKey", "-q", "--key-file", first}, append(pbkdf2Opts, img, second)...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("luksAddKey: %v\n%s", err, out)
	}
	rewriteJSON(t, img, func(m map[string]any) { set(m, "keyslots.0.kdf.iterations", float64(1<<30)) })
	b := NewKDFBudget(DefaultKDFBudget)
	fm := &fakeMapper{}
	o := Opener{Role: "data", DevDir: t.TempDir(), Mapper: fm, Budget: b}
	if _, err := o.Open(img, "keel-data", Key{Secret: []byte("second"), Kind: Passphrase}); err != nil || len(fm.created) != 1 {
		t.Fatalf("slot 1's passphrase, a fresh budget: %v", err)
	}
	if b.Left() == DefaultKDFBudget || DefaultKDFBudget-b.Left() > 1<<20 {
		t.Errorf("spent %d units: want slot 1's cost only", DefaultKDFBudget-b.Left())
	}
	_, err := o.Open(img, "keel-data", Key{Secret: []byte("third"), Kind: Passphrase})
	if !errors.Is(err, ErrNoKeySlot) || errors.Is(err, ErrKDFBudget) ||
		!strings.Contains(err.Error(), "key slot 0: key slot 0 (pbkdf2) needs 2147483648 KDF units, more than a boot's whole budget of 536870912: not tried") {
		t.Errorf("a wrong passphrase: %v; want no slot matching, slot 0 named as never payable", err)
	}

	// Memory: refused before the charge.
	argon := luksVolume(t, first, "--pbkdf", "argon2id", "--pbkdf-memory", "65536", "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "1")
	freeMemory = func() (uint64, error) { return 32 << 20, nil }
	t.Cleanup(func() { freeMemory = sysinfoFreeMemory })
	b = NewKDFBudget(DefaultKDFBudget)
	o = Opener{Role: "data", DevDir: t.TempDir(), Mapper: &fakeMapper{}, Budget: b}
	if _, err := o.Open(argon, "keel-data", Key{Secret: []byte("first"), Kind: KeyFile}); err == nil || !strings.Contains(err.Error(), "argon2 needs 64 MiB of memory") || b.Left() != DefaultKDFBudget {
		t.Errorf("argon2 without the memory: %v, %d units spent; want the memory named and nothing spent", err, DefaultKDFBudget-b.Left())
	}
}

func TestKDFCost(t *testing.T) {
	slot := func(typ, hash string, iterations, time, memory uint32, keySize int) *keyslot {
		k := &keyslot{}
		k.kdf.typ, k.kdf.hash, k.kdf.iterations, k.kdf.time, k.kdf.memory = typ, hash, iterations, time, memory
		k.area.keySize = keySize
		return k
	}
	for _, tc := range []struct {
		k    *keyslot
		want uint64
	}{
		{slot("pbkdf2", "sha256", 1000, 0, 0, 64), 2000},
		{slot("pbkdf2", "sha512", 1000, 0, 0, 64), 1000},
		{slot("pbkdf2", "sha1", 10, 0, 0, 32), 20},
		{slot("pbkdf2", "md5", 10, 0, 0, 32), 0},
		{slot("argon2id", "", 0, 4, 1<<20, 64), 4 << 22},
		{slot("argon2i", "", 0, 1<<32-1, 4<<20, 64), (1<<32 - 1) * (4 << 20) * argon2Unit},
		{slot("scrypt", "", 0, 0, 0, 64), 0},
	} {
		if got := kdfCost(tc.k); got != tc.want {
			t.Errorf("kdfCost(%+v) = %d, want %d", tc.k.kdf, got, tc.want)
		}
	}
}
