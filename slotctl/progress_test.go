// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{0, gib, 0, "writing root-b: 0 B of 1.0 GiB (0%)"},
		{gib / 2, gib, 5 * time.Second, "writing root-b: 512.0 MiB of 1.0 GiB (50%), 102.4 MiB/s, 5s left"},
		{gib / 4, gib, 20 * time.Second, "writing root-b: 256.0 MiB of 1.0 GiB (25%), 12.8 MiB/s, 1m00s left"},
		{1 << 20, 4 * gib, 10 * time.Second, "writing root-b: 1.0 MiB of 4.0 GiB (0%), 102.4 KiB/s, 11h22m left"},
		{10, 4 * gib, 1000 * time.Second, "writing root-b: 10 B of 4.0 GiB (0%), 0 B/s, over 99h left"},
		{gib, gib, 4 * time.Second, "writing root-b: 1.0 GiB of 1.0 GiB (100%), 256.0 MiB/s"},
		{gib + 5, gib, 4 * time.Second, "writing root-b: 1.0 GiB of 1.0 GiB (100%), 256.0 MiB/s"},
		{3000, 0, time.Second, "writing root-b: 2.9 KiB of 0 B, 2.9 KiB/s"},
	} {
		if got := progressLine("writing root-b", tc.done, tc.total, tc.elapsed); got != tc.want {
			t.Errorf("progressLine(%d, %d, %v) = %q, want %q", tc.done, tc.total, tc.elapsed, got, tc.want)
		}
	}
}

// FuzzProgressLine: any counts and times give one line, never over 100 %.
func FuzzProgressLine(f *testing.F) {
	f.Add(int64(1<<29), int64(1<<30), int64(5*time.Second))
	f.Add(int64(-1), int64(0), int64(-1))
	f.Fuzz(func(t *testing.T, done, total, elapsed int64) {
		s := progressLine("p", done, total, time.Duration(elapsed))
		if strings.ContainsAny(s, "\r\n") {
			t.Fatalf("%q: more than one line", s)
		}
		if _, rest, ok := strings.Cut(s, "("); ok {
			pct, _, _ := strings.Cut(rest, "%)")
			if n, err := strconv.Atoi(pct); err != nil || n < 0 || n > 100 {
				t.Fatalf("%q: percentage %q", s, pct)
			}
		}
		if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") || strings.Contains(s, "-") {
			t.Fatalf("%q", s)
		}
	})
}

func TestShowProgress(t *testing.T) {
	for _, tc := range []struct{ quiet, force, terminal, want bool }{
		{false, false, true, true},
		{false, false, false, false},
		{true, false, true, false},
		{false, true, false, true},
	} {
		if got := showProgress(tc.quiet, tc.force, tc.terminal); got != tc.want {
			t.Errorf("showProgress(quiet %v, force %v, terminal %v) = %v", tc.quiet, tc.force, tc.terminal, got)
		}
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
}

// TestProgressPhases draws with an injected clock: each phase ends with
// its full line and a newline; a nil progress draws nothing.
func TestProgressPhases(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(1000, 0)
	p := newProgress(&out, func() time.Time { return clock }, true)
	p.begin("writing root-a", 8<<20)
	p.add(4 << 20)
	p.add(4 << 20)
	clock = clock.Add(2 * time.Second)
	p.end()
	p.begin("checking root-a", 8<<20)
	p.add(2 << 20)
	clock = clock.Add(time.Second)
	p.draw(false)
	p.end()
	got := out.String()
	for _, want := range []string{
		"\rwriting root-a: 8.0 MiB of 8.0 MiB (100%), 4.0 MiB/s\x1b[K\n",
		"\rchecking root-a: 2.0 MiB of 8.0 MiB (25%), 2.0 MiB/s, 3s left\x1b[K\r",
		"\rchecking root-a: 2.0 MiB of 8.0 MiB (25%), 2.0 MiB/s, 3s left\x1b[K\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%q", want, got)
		}
	}
	drawn := out.Len()
	var none *progress = newProgress(&out, time.Now, false)
	none.begin("x", 1)
	none.add(1)
	none.end()
	if out.Len() != drawn {
		t.Errorf("progress off drew %q", out.String()[drawn:])
	}
}

// TestInstallProgressFlags: --progress shows both phases on stderr,
// --quiet nothing, both together are a usage error.
func TestInstallProgressFlags(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "1MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	img, ver := sealedImage(t, dir, "img", key)
	r := slotctl(t, nil, "install", "--disk", disk, "--slot", "b", img, ver, "--progress")
	if r.code != 0 || !strings.Contains(r.stderr, "writing root-b: ") || !strings.Contains(r.stderr, "checking root-b: ") || !strings.Contains(r.stderr, "(100%)") {
		t.Errorf("--progress: exit %d, stderr %q", r.code, r.stderr)
	}
	r = slotctl(t, nil, "install", "--disk", disk, "--slot", "b", img, ver, "--quiet")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("--quiet: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := slotctl(t, nil, "install", "--disk", disk, "--slot", "b", img, ver, "--quiet", "--progress"); r.code != 2 {
		t.Errorf("--quiet --progress: exit %d, want a usage error\n%s", r.code, r.stderr)
	}
}

// TestInstallCorruptImage: an image whose data does not match its tree is
// caught while it is written; the slot stays marked bad and is not set
// next.
func TestInstallCorruptImage(t *testing.T) {
	dir := t.TempDir()
	disk := makeDisk(t, dir, "1MiB")
	key := filepath.Join(dir, "k")
	mustRun(t, nil, "keygen", "--out", key)
	img, ver := sealedImage(t, dir, "img", key)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-100] ^= 1
	bad := filepath.Join(dir, "bad.squashfs")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r := slotctl(t, nil, "install", "--disk", disk, "--slot", "b", bad, ver)
	if r.code != 1 || !strings.Contains(r.stderr, bad+": image ") || !strings.Contains(r.stderr, "mismatch") || !strings.Contains(r.stderr, "slot b stays marked bad") {
		t.Errorf("corrupt image: exit %d, %s", r.code, r.stderr)
	}
	v := statusJSON(t, "--disk", disk)
	if s := v.Slots[1]; s.Priority != 0 || !strings.Contains(s.Reason, "install failed") {
		t.Errorf("slot b after a corrupt install: %+v", s)
	}
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) WriteAt([]byte, int64) (int, error) { return 0, errors.New("disk full") }

func TestTeeWriteError(t *testing.T) {
	tee := &teeReaderAt{r: bytes.NewReader(make([]byte, 8192)), w: failingWriter{}}
	if n, err := tee.ReadAt(make([]byte, 4096), 0); n != 0 || err == nil {
		t.Errorf("ReadAt = %d, %v; want the write's error", n, err)
	}
	if err := tee.writeErr(); err == nil || err.Error() != "disk full" {
		t.Errorf("writeErr = %v", err)
	}
}
