// SPDX-License-Identifier: Apache-2.0

package datapart

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCopyTree copies a tree shaped like a Debian /var (what the
// first boot seeds): 650 files in 60 directories, most of them a few
// hundred bytes (dpkg's lists and md5sums), a few of 100 KB and more,
// 4.9 MB in all. It measures the copier's own cost per file — the system
// calls and path walks that dominate a seed under emulation — not the
// file systems': source and copies are on /dev/shm when it is a tmpfs,
// each copy removed outside the timing.
func BenchmarkCopyTree(b *testing.B) {
	base := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "keel-bench-"); err == nil {
			base = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	src := filepath.Join(base, "var")
	size := 0
	for d := range 60 {
		dir := filepath.Join(src, fmt.Sprintf("lib/d%02d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 11 {
			n := 300 + (d*131+f*977)%3000
			if f == 0 && d%6 == 0 {
				n = 300 << 10
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.list", f)), make([]byte, n), 0o644); err != nil {
				b.Fatal(err)
			}
			size += n
		}
	}
	b.SetBytes(int64(size))
	dst := filepath.Join(base, "copy")
	b.ResetTimer()
	for range b.N {
		if err := copyTree(src, dst, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(dst); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
