// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/keel-boot/keel/internal/build"
)

// UnlockRow is one LUKS2 key slot, opened by keel and by cryptsetup.
type UnlockRow struct {
	KDF              string // the key slot's KDF and cost, for the reader
	Keel, Cryptsetup Summary
}

// Ratio is keel's median over cryptsetup's.
func (u UnlockRow) Ratio() string {
	return Ratio(u.Keel.Median.Seconds(), u.Cryptsetup.Median.Seconds())
}

// UnlockBench is keel's unlock against `cryptsetup open --test-passphrase`
// on the same headers (issue 14, part 4).
type UnlockBench struct {
	Rows []UnlockRow
	Runs int
	Note string // why nothing was measured, if so
}

// unlockHeaders are the key slots timed: Argon2id at the cost cryptsetup's
// defaults chose on this machine in issue 14 (4 passes, 836 MiB, 2 lanes;
// forced, so that every run times the same work), and PBKDF2-SHA256.
var unlockHeaders = []struct {
	kdf  string
	opts []string
}{
	{"Argon2id, 4 passes, 836 MiB, 2 lanes (cryptsetup's default cost here)",
		[]string{"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "856064", "--pbkdf-parallel", "2"}},
	{"PBKDF2-SHA256, 1,000,000 iterations",
		[]string{"--pbkdf", "pbkdf2", "--hash", "sha256", "--pbkdf-force-iterations", "1000000"}},
}

// RunUnlockBench builds internal/cmd/keel-unlock as the Makefile builds the
// init, makes a 64 MiB LUKS2 volume per header in dir and opens each runs
// times with keel-unlock and with cryptsetup, alternately, timing the
// wall clock of each command.
func RunUnlockBench(root, dir string, runs int) (UnlockBench, error) {
	u := UnlockBench{Runs: runs}
	cs, err := exec.LookPath("cryptsetup")
	if err != nil {
		u.Note = "not measured: no cryptsetup (Debian package cryptsetup-bin)"
		return u, nil
	}
	bin, err := buildCommand(root, dir, "internal/cmd/keel-unlock")
	if err != nil {
		return u, err
	}
	key := filepath.Join(dir, "unlock.key")
	if err := os.WriteFile(key, []byte("keel bench passphrase"), 0o600); err != nil {
		return u, err
	}
	for i, h := range unlockHeaders {
		vol := filepath.Join(dir, fmt.Sprintf("unlock%d.img", i))
		if err := os.WriteFile(vol, nil, 0o600); err != nil {
			return u, err
		}
		if err := os.Truncate(vol, 64<<20); err != nil {
			return u, err
		}
		format := append(append([]string{"luksFormat", "--type", "luks2", "-q"}, h.opts...), "--key-file", key, vol)
		if b, err := exec.Command(cs, format...).CombinedOutput(); err != nil {
			return u, fmt.Errorf("cryptsetup %s: %v\n%s", strings.Join(format, " "), err, b)
		}
		var keel, ref []time.Duration
		for range runs {
			d, err := timeCommand(bin, "--key-file", key, vol)
			if err != nil {
				return u, err
			}
			keel = append(keel, d)
			if d, err = timeCommand(cs, "open", "--test-passphrase", "--key-file", key, vol); err != nil {
				return u, err
			}
			ref = append(ref, d)
		}
		u.Rows = append(u.Rows, UnlockRow{KDF: h.kdf, Keel: Summarize(keel), Cryptsetup: Summarize(ref)})
	}
	return u, nil
}

// buildCommand builds the command in package directory pkg of the module
// at root into dir, with the Makefile's flags, and returns its path.
func buildCommand(root, dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	args := append(append([]string{"build"}, build.Args()...), "-o", bin, "./"+pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return bin, nil
}

// timeCommand runs a command that must succeed and returns its wall time.
func timeCommand(name string, args ...string) (time.Duration, error) {
	start := time.Now()
	b, err := exec.Command(name, args...).CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
	}
	return d, nil
}

// Target is issue 14's: keel's Argon2id unlock no slower than cryptsetup.
func (u UnlockBench) Target() Target {
	t := Target{What: "LUKS2 Argon2id unlock vs cryptsetup open --test-passphrase", Goal: "≤ ×1.00", Measured: "n/a"}
	if len(u.Rows) > 0 {
		r := u.Rows[0]
		t.Measured = r.Ratio()
		t.Met = r.Keel.N > 0 && r.Cryptsetup.N > 0 && r.Keel.Median <= r.Cryptsetup.Median
	}
	return t
}

// Markdown is the section of BENCHMARKS.md.
func (u UnlockBench) Markdown() string {
	var b strings.Builder
	b.WriteString("\n### LUKS2 unlock on the host (issue 14)\n\n")
	if u.Note != "" {
		b.WriteString(u.Note + "\n")
		return b.String()
	}
	fmt.Fprintf(&b, "Recovering the volume key of a 64 MiB LUKS2 volume from a key file: `keel-unlock` (internal/cmd/keel-unlock: package unlock as the init runs it, memory locked) against `cryptsetup open --test-passphrase`, same header, alternately, wall time, median of %d (min–max).\n\n", u.Runs)
	b.WriteString("| key slot | keel | cryptsetup | keel ÷ cryptsetup |\n| --- | --- | --- | --- |\n")
	for _, r := range u.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.KDF, r.Keel.Spread(), r.Cryptsetup.Spread(), r.Ratio())
	}
	t := u.Target()
	fmt.Fprintf(&b, "\nTarget: %s %s, measured %s: %s.\n", t.What, t.Goal, t.Measured, t.Verdict())
	return b.String()
}
