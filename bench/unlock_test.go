// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestUnlockMarkdown(t *testing.T) {
	s := func(d time.Duration) Summary {
		return Summary{N: 3, Median: d, Min: d - time.Second/10, Max: d + time.Second/10}
	}
	u := UnlockBench{Runs: 3, Rows: []UnlockRow{
		{KDF: "Argon2id", Keel: s(1500 * time.Millisecond), Cryptsetup: s(2 * time.Second)},
		{KDF: "PBKDF2", Keel: s(700 * time.Millisecond), Cryptsetup: s(time.Second)},
	}}
	md := u.Markdown()
	for _, want := range []string{
		"| Argon2id | 1.50 s (1.40–1.60) | 2.00 s (1.90–2.10) | ×0.75 |",
		"| PBKDF2 | 0.70 s (0.60–0.80) | 1.00 s (0.90–1.10) | ×0.70 |",
		"median of 3",
		"measured ×0.75: met.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	u.Rows[0].Keel = s(2100 * time.Millisecond)
	if tg := u.Target(); tg.Met || tg.Measured != "×1.05" {
		t.Errorf("keel slower than cryptsetup: target %+v", tg)
	}
	if tg := (UnlockBench{Note: "not measured"}).Target(); tg.Met || tg.Measured != "n/a" {
		t.Errorf("nothing measured: target %+v", tg)
	}
	if md := (UnlockBench{Note: "not measured: no cryptsetup"}).Markdown(); !strings.Contains(md, "not measured: no cryptsetup") {
		t.Errorf("markdown without measurements: %s", md)
	}
}

// TestRunUnlockBench runs the unlock bench once per header (KEEL_BENCH=1:
// it derives an 836 MiB Argon2id key twice).
func TestRunUnlockBench(t *testing.T) {
	if os.Getenv("KEEL_BENCH") != "1" {
		t.Skip("derives 836 MiB Argon2id keys: run with KEEL_BENCH=1")
	}
	u, err := RunUnlockBench(moduleRoot(t), t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if u.Note != "" {
		t.Skip(u.Note)
	}
	if len(u.Rows) != len(unlockHeaders) {
		t.Fatalf("%d rows, want %d", len(u.Rows), len(unlockHeaders))
	}
	for _, r := range u.Rows {
		if r.Keel.N != 1 || r.Cryptsetup.N != 1 || r.Keel.Median <= 0 || r.Cryptsetup.Median <= 0 {
			t.Errorf("%s: keel %+v, cryptsetup %+v", r.KDF, r.Keel, r.Cryptsetup)
		}
	}
	t.Log(u.Markdown())
}
