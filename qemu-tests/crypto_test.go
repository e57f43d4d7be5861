// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"strconv"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestVerityUsesCPUSHA256: an image without btrfs (whose soft dependency
// used to be the only thing that brought sha256_ssse3 in) still gives
// dm-verity the CPU's SHA-256, loaded before its table: the device mapper
// keeps the implementation it found then for the device's life (kmod
// accelerations; TestDataLUKSKeyfile checks dm-crypt's AES).
func TestVerityUsesCPUSHA256(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	disk := abDisk(t, &a, nil)
	img := initrd(t, "--trust", key+".pub", "--no-default-modules", "--modules", noWatchdogModules)
	r, br := boot(t, img, disk, "slot=a "+actions(t, nil, "/proc/crypto"))
	if br.Slot != "a" {
		t.Fatalf("booted slot %q, want a", br.Slot)
	}
	c, _ := r.Cat("/proc/crypto")
	wantCPUSHA256(t, procCrypto(c.Content))
}

// wantCPUSHA256 checks that the sha256 held at the highest priority (the
// one dm-verity found when its table was loaded) is sha256_ssse3's, not the
// kernel's built-in C code (held too: IMA keeps a reference).
func wantCPUSHA256(t *testing.T, algs []map[string]string) {
	t.Helper()
	if a := inUse(algs, "sha256"); a["module"] != "sha256_ssse3" {
		t.Errorf("dm-verity uses %q (module %q) for sha256, want sha256_ssse3's (sha256-avx2 or sha256-ni)", a["driver"], a["module"])
	}
}

// procCrypto parses /proc/crypto: one map of its "key : value" lines per
// algorithm.
func procCrypto(s string) []map[string]string {
	var out []map[string]string
	for _, block := range strings.Split(s, "\n\n") {
		a := map[string]string{}
		for _, line := range strings.Split(block, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				a[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
		if a["name"] != "" {
			out = append(out, a)
		}
	}
	return out
}

// inUse is the implementation of name that something holds (a reference
// beyond its registration's: refcnt above 1), the one of the highest
// priority when several are; nil when none is held.
func inUse(algs []map[string]string, name string) map[string]string {
	var best map[string]string
	prio := func(a map[string]string) int { n, _ := strconv.Atoi(a["priority"]); return n }
	for _, a := range algs {
		if n, _ := strconv.Atoi(a["refcnt"]); a["name"] != name || n < 2 {
			continue
		}
		if best == nil || prio(a) > prio(best) {
			best = a
		}
	}
	return best
}
