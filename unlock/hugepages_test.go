// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestHugePagesOver(t *testing.T) {
	const h = hugePage
	for _, tc := range []struct {
		p     uintptr
		n     uint64
		start uintptr
		size  uint64
	}{
		{p: 0, n: 3 * h, start: 0, size: 3 * h},
		{p: h, n: 3*h + 5, start: h, size: 4 * h},
		{p: h + 4096, n: 3 * h, start: h, size: 4 * h},
		{p: h + 4096, n: h - 4096, start: h, size: h},
		{p: 7, n: 0, start: 0, size: 0},
	} {
		start, size := hugePagesOver(tc.p, tc.n)
		if start != tc.start || size != tc.size {
			t.Errorf("hugePagesOver(%#x, %d) = %#x, %d; want %#x, %d", tc.p, tc.n, start, size, tc.start, tc.size)
		}
	}
}

func TestHugePagesWithin(t *testing.T) {
	const h = hugePage
	for _, tc := range []struct {
		p         uintptr
		n         uint64
		off, size uint64
	}{
		{p: 0, n: 3 * h, off: 0, size: 3 * h},
		{p: h, n: 3*h + 5, off: 0, size: 3 * h},
		{p: h + 4096, n: 3 * h, off: h - 4096, size: 2 * h},
		{p: h + 4096, n: h, off: 0, size: 0},
		{p: 7, n: 0, off: 0, size: 0},
	} {
		if off, size := hugePagesWithin(tc.p, tc.n); off != tc.off || size != tc.size {
			t.Errorf("hugePagesWithin(%#x, %d) = %d, %d; want %d, %d", tc.p, tc.n, off, size, tc.off, tc.size)
		}
	}
}

// FuzzHugePagesOver: the range is whole huge pages, covers the n bytes,
// and holds no huge page that does not overlap them.
func FuzzHugePagesOver(f *testing.F) {
	f.Add(uint64(hugePage+4096), uint64(3*hugePage))
	f.Add(uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, p, n uint64) {
		p %= 1 << 47 // user-space addresses
		n %= 1 << 40
		checkWithin(t, p, n)
		start, size := hugePagesOver(uintptr(p), n)
		s := uint64(start)
		if s%hugePage != 0 || size%hugePage != 0 {
			t.Fatalf("(%#x, %d) = %#x, %d: not whole huge pages", p, n, start, size)
		}
		if n == 0 {
			if size != 0 {
				t.Fatalf("(%#x, 0) = %#x, %d: huge pages for no bytes", p, start, size)
			}
			return
		}
		if s > p || s+size < p+n {
			t.Fatalf("(%#x, %d) = %#x, %d: does not cover the bytes", p, n, start, size)
		}
		if p-s >= hugePage || s+size-(p+n) >= hugePage {
			t.Fatalf("(%#x, %d) = %#x, %d: a huge page more than the bytes overlap", p, n, start, size)
		}
	})
}

// checkWithin: hugePagesWithin's range is whole huge pages inside the n
// bytes at p, and leaves out no whole huge page of them.
func checkWithin(t *testing.T, p, n uint64) {
	off, size := hugePagesWithin(uintptr(p), n)
	first := (hugePage - p%hugePage) % hugePage
	if size == 0 {
		if off != 0 || first+hugePage <= n {
			t.Fatalf("within(%#x, %d) = %d, 0: the huge page at +%d fits", p, n, off, first)
		}
		return
	}
	if off != first || off+size > n || size%hugePage != 0 || n-off-size >= hugePage {
		t.Fatalf("within(%#x, %d) = %d, %d: not the whole huge pages inside", p, n, off, size)
	}
}

func TestArgon2Blocks(t *testing.T) {
	for _, tc := range []struct {
		memory  uint32
		threads uint8
		want    uint64
	}{
		{856064, 2, 856064},
		{1000, 3, 996},
		{8, 4, 32},
		{65536, 1, 65536},
	} {
		if got := argon2Blocks(tc.memory, tc.threads); got != tc.want {
			t.Errorf("argon2Blocks(%d, %d) = %d, want %d", tc.memory, tc.threads, got, tc.want)
		}
	}
}

// thpMode is the kernel's transparent huge page mode: "always", "madvise",
// "never", or "" without THP.
func thpMode(t *testing.T) string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	_, rest, _ := strings.Cut(string(b), "[")
	mode, _, _ := strings.Cut(rest, "]")
	return mode
}

// thpEligible reports whether the mapping holding addr was advised for
// huge pages (MADV_HUGEPAGE: "hg" in its VmFlags in /proc/self/smaps).
func thpEligible(t *testing.T, addr uintptr) bool {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	in := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if lo, hi, ok := vmaRange(line); ok {
			in = lo <= uint64(addr) && uint64(addr) < hi
			continue
		}
		if v, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return slices.Contains(strings.Fields(v), "hg")
		}
	}
	t.Fatalf("no mapping with VmFlags holds %#x", addr)
	return false
}

// vmaRange parses the "start-end perms ..." line that opens a mapping.
func vmaRange(line string) (lo, hi uint64, ok bool) {
	r, _, _ := strings.Cut(line, " ")
	a, b, found := strings.Cut(r, "-")
	if !found {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(a, 16, 64)
	hi, err2 := strconv.ParseUint(b, 16, 64)
	return lo, hi, err1 == nil && err2 == nil
}

// TestHugePagesReachArgon2 checks that the buffer allocated after
// hugePagesFor, as x/crypto's argon2 allocates it, lies in memory advised
// for huge pages, and that a fresh one of another size does not: the
// advice is what hugePagesFor adds. It reads the advice itself (the hg
// flag), which every THP mode keeps, not whether the kernel would use huge
// pages there: under "always" (Debian's kernels) every mapping is eligible.
func TestHugePagesReachArgon2(t *testing.T) {
	if m := thpMode(t); m == "" {
		t.Skip("the kernel has no transparent huge pages")
	}
	const memory, threads = 64 << 10, 2
	hugePagesFor(memory, threads, false)
	blocks := make([]argon2Block, argon2Blocks(memory, threads)) // as x/crypto allocates it
	if !thpEligible(t, uintptr(unsafe.Pointer(&blocks[len(blocks)/2]))) {
		t.Errorf("the Argon2 buffer after hugePagesFor is not eligible for huge pages")
	}
	fresh := make([]argon2Block, 3*memory)
	if thpEligible(t, uintptr(unsafe.Pointer(&fresh[len(fresh)/2]))) {
		t.Errorf("a fresh buffer is eligible for huge pages without hugePagesFor: the test proves nothing")
	}
}

// vmLck is VmLck of /proc/self/status in KiB.
func vmLck(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmLck:")); ok {
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmLck %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}

// TestLockMemory locks memory around an Argon2id unlock of a testdata
// volume: the key is still right, memory is locked meanwhile and not after.
func TestLockMemory(t *testing.T) {
	img, key, want := testVolume(t, "argon2id")
	p := filepath.Join(t.TempDir(), "img")
	must(t, os.WriteFile(p, img, 0o600))
	release, err := LockMemory()
	if err != nil {
		if os.Geteuid() != 0 && strings.Contains(err.Error(), "RLIMIT_MEMLOCK") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	locked := vmLck(t)
	fm := &fakeMapper{}
	_, err = Opener{DevDir: t.TempDir(), Mapper: fm}.Open(p, "k", Key{Secret: key, Kind: KeyFile})
	if rerr := release(); rerr != nil {
		t.Error(rerr)
	}
	must(t, err)
	if !bytes.Equal(fm.created[0].Key, want) {
		t.Errorf("volume key %x, want %x", fm.created[0].Key, want)
	}
	if locked == 0 {
		t.Error("VmLck is 0 kB while memory is locked")
	}
	if after := vmLck(t); after != 0 {
		t.Errorf("VmLck is %d kB after release", after)
	}
}

// TestCheck recovers a testdata volume's key without mapping it.
func TestCheck(t *testing.T) {
	img, key, _ := testVolume(t, "pbkdf2-sha512")
	p := filepath.Join(t.TempDir(), "img")
	must(t, os.WriteFile(p, img, 0o600))
	if err := (Opener{Role: "data"}).Check(p, Key{Secret: key, Kind: KeyFile}); err != nil {
		t.Fatal(err)
	}
	err := Opener{}.Check(p, Key{Secret: []byte("wrong"), Kind: Passphrase})
	if want := "volume (LUKS2 " + p + "): no key slot matches the passphrase"; err == nil || err.Error() != want || !errors.Is(err, ErrNoKeySlot) {
		t.Errorf("wrong key: err = %v, want %q", err, want)
	}
}
