// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// installImageSize is the image the install bench writes: 1 GiB.
const installImageSize = 1 << 30

// InstallBench is `slotctl install` against dd + veritysetup verify on the
// same files (issue 14, part 3).
type InstallBench struct {
	Keel, Reference Summary
	Runs            int
	Note            string // why nothing was measured, if so
}

// RunInstallBench makes a 1 GiB sealed image (a small SquashFS followed by
// random bytes, sealed with slotctl seal --key) and a file-backed GPT disk,
// then times, alternately, runs times each:
//   - slotctl install --disk DISK --slot b IMAGE VERITY --trust KEY.pub
//     --quiet: header and signature, the image written while its tree is
//     checked, the verity file written, both synced, their page cache
//     dropped, read back and the whole tree checked;
//   - dd (bs=4M, conv=fsync) of both files into partition-sized files, the
//     page cache of both dropped (dd iflag=nocache count=0), and
//     veritysetup verify of what landed.
func RunInstallBench(slotctl, dir string, runs int) (InstallBench, error) {
	ib := InstallBench{Runs: runs}
	for _, tool := range []string{"mksquashfs", "veritysetup", "sfdisk", "dd"} {
		if _, err := exec.LookPath(tool); err != nil {
			ib.Note = "not measured: no " + tool
			return ib, nil
		}
	}
	img, ver, pub, err := installImage(slotctl, dir)
	if err != nil {
		return ib, err
	}
	rootHash, err := rootHashOf(slotctl, ver)
	if err != nil {
		return ib, err
	}
	disk, err := installDisk(dir)
	if err != nil {
		return ib, err
	}
	rootPart, verityPart := filepath.Join(dir, "root-b.part"), filepath.Join(dir, "verity-b.part")
	for _, p := range []string{rootPart, verityPart} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return ib, err
		}
	}
	var keel, ref []time.Duration
	for range runs {
		d, err := timeCommand(slotctl, "install", "--disk", disk, "--slot", "b", img, ver, "--trust", pub, "--quiet")
		if err != nil {
			return ib, err
		}
		keel = append(keel, d)
		start := time.Now()
		for _, c := range [][]string{
			{"dd", "if=" + img, "of=" + rootPart, "bs=4M", "conv=notrunc,fsync", "status=none"},
			{"dd", "if=" + ver, "of=" + verityPart, "bs=4M", "conv=notrunc,fsync", "status=none"},
			{"dd", "if=" + rootPart, "iflag=nocache", "count=0", "status=none"},
			{"dd", "if=" + verityPart, "iflag=nocache", "count=0", "status=none"},
			{"veritysetup", "verify", rootPart, verityPart, rootHash, "--hash-offset=4096"},
		} {
			if _, err := timeCommand(c[0], c[1:]...); err != nil {
				return ib, err
			}
		}
		ref = append(ref, time.Since(start))
	}
	ib.Keel, ib.Reference = Summarize(keel), Summarize(ref)
	return ib, nil
}

// installImage makes the sealed 1 GiB image and its signing key.
func installImage(slotctl, dir string) (img, ver, pub string, err error) {
	tree := filepath.Join(dir, "install-tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return "", "", "", err
	}
	if err := os.WriteFile(filepath.Join(tree, "hello"), []byte("keel install bench\n"), 0o644); err != nil {
		return "", "", "", err
	}
	img, ver, key := filepath.Join(dir, "install.squashfs"), filepath.Join(dir, "install.verity"), filepath.Join(dir, "install.key")
	if _, err := timeCommand("mksquashfs", tree, img, "-noappend", "-quiet", "-all-root"); err != nil {
		return "", "", "", err
	}
	if err := fillRandom(img, installImageSize); err != nil {
		return "", "", "", err
	}
	if _, err := timeCommand(slotctl, "keygen", "--out", key); err != nil {
		return "", "", "", err
	}
	if _, err := timeCommand(slotctl, "seal", "--image", img, "--out", ver, "--key", key, "--image-id", "install-bench"); err != nil {
		return "", "", "", err
	}
	return img, ver, key + ".pub", nil
}

// fillRandom extends the file at path to size bytes of random data, so no
// layer can skip what it reads or writes as zeros.
func fillRandom(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	off, err := f.Seek(0, 2)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{'k', 'e', 'e', 'l'})
	buf := make([]byte, 4<<20)
	for off < size {
		n := min(int64(len(buf)), size-off)
		r.Read(buf[:n])
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	return f.Close()
}

// rootHashOf reads the root hash of a verity file with slotctl inspect.
func rootHashOf(slotctl, ver string) (string, error) {
	out, err := exec.Command(slotctl, "inspect", "--json", ver).Output()
	if err != nil {
		return "", fmt.Errorf("slotctl inspect %s: %w", ver, err)
	}
	var v struct {
		RootHash   string `json:"root_hash"`
		HashOffset uint64 `json:"hash_offset"`
	}
	if err := json.Unmarshal(out, &v); err != nil || v.RootHash == "" {
		return "", fmt.Errorf("slotctl inspect %s: no root hash in %q (%v)", ver, out, err)
	}
	if v.HashOffset != 4096 {
		return "", fmt.Errorf("slotctl inspect %s: hash tree at byte %d, the bench passes veritysetup --hash-offset=4096", ver, v.HashOffset)
	}
	return v.RootHash, nil
}

// installDisk makes a sparse GPT disk image with both slots.
func installDisk(dir string) (string, error) {
	disk := filepath.Join(dir, "install-disk.img")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Truncate(disk, 2200<<20); err != nil {
		return "", err
	}
	root := strconv.Itoa(installImageSize>>20+16) + "MiB"
	script := "label: gpt\nsize=" + root + ", name=root-a\nsize=16MiB, name=verity-a\n" +
		"size=" + root + ", name=root-b\nsize=16MiB, name=verity-b\nsize=1MiB, name=bootstate\n"
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("sfdisk: %v\n%s", err, out)
	}
	return disk, nil
}

// Target is issue 14's: slotctl install no slower than dd + veritysetup.
func (ib InstallBench) Target() Target {
	t := Target{What: "slotctl install of 1 GiB vs dd + veritysetup verify", Goal: "≤ ×1.00", Measured: "n/a"}
	if ib.Keel.N > 0 && ib.Reference.N > 0 {
		t.Measured = Ratio(ib.Keel.Median.Seconds(), ib.Reference.Median.Seconds())
		t.Met = ib.Keel.Median <= ib.Reference.Median
	}
	return t
}

// Markdown is the section of BENCHMARKS.md.
func (ib InstallBench) Markdown() string {
	var b strings.Builder
	b.WriteString("\n### Installing an update on the host (issue 14)\n\n")
	if ib.Note != "" {
		b.WriteString(ib.Note + "\n")
		return b.String()
	}
	fmt.Fprintf(&b, "A 1 GiB sealed image written into slot b of a file-backed GPT disk and checked: `slotctl install --quiet` (signature, write, sync, read back, whole hash tree) against `dd bs=4M conv=fsync` of both files, their page cache dropped, and `veritysetup verify`; alternately, wall time, median of %d (min–max).\n\n", ib.Runs)
	b.WriteString("| slotctl install | dd + veritysetup verify | keel ÷ reference |\n| --- | --- | --- |\n")
	fmt.Fprintf(&b, "| %s | %s | %s |\n", ib.Keel.Spread(), ib.Reference.Spread(), Ratio(ib.Keel.Median.Seconds(), ib.Reference.Median.Seconds()))
	t := ib.Target()
	fmt.Fprintf(&b, "\nTarget: %s %s, measured %s: %s.\n", t.What, t.Goal, t.Measured, t.Verdict())
	return b.String()
}
