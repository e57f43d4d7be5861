// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keel-boot/keel/datapart"
)

// BenchmarkInterleaved compares, on one machine at one moment, the ways of
// making the new upper's etc/ of benchTrees: each iteration is one round
// running every variant once (the file system flushed before each, its
// output removed after), and each variant's median over the rounds is
// reported as SECONDS-NAME/op. A loaded, shared host (QEMU guests of
// several people) changes absolute times by several times within minutes;
// variants run in turn in separate benchmarks are not comparable there,
// variants interleaved are. Run it with -test.bench=Interleaved
// -test.benchtime=7x (in the guest: KEEL_BENCH_ETC_ARGS, BENCHMARKS.md);
// on btrfs the snapshot variants run too.
func BenchmarkInterleaved(b *testing.B) {
	o, _ := benchTrees(b)
	files, dirs := floorFiles(o)
	out := b.TempDir()
	merge := func(o Options, workers int) func(string) error {
		return func(root string) error {
			o.Out, o.workers = filepath.Join(root, "upper", "etc"), workers
			if o.InPlace {
				if err := datapart.Snapshot(filepath.Join(out, "old"), out, filepath.Base(root)); err != nil {
					return err
				}
			} else if err := os.MkdirAll(filepath.Join(root, "upper"), 0o755); err != nil {
				return err
			}
			r, err := Merge(o)
			if err == nil && (r.Carried < 360 || len(r.Conflicts) != 50) {
				err = fmt.Errorf("carried %d, %d conflicts: the change set is not what it should be", r.Carried, len(r.Conflicts))
			}
			return err
		}
	}
	type variant struct {
		name string
		run  func(root string) error
	}
	vs := []variant{
		{"merge", merge(o, 0)},
		{"merge1", merge(o, 1)},
		{"floor", func(root string) error { return writeFloor(root, files, dirs) }},
		{"links", func(root string) error { // what hard links into the old upper would cost
			for _, d := range dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					return err
				}
			}
			for _, f := range files {
				if strings.HasSuffix(f.rel, KeepSuffix) {
					continue // not in the old upper
				}
				if err := os.Link(filepath.Join(o.Local, f.rel), filepath.Join(root, f.rel)); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	var st unix.Statfs_t
	if err := unix.Statfs(out, &st); err == nil && st.Type == unix.BTRFS_SUPER_MAGIC {
		must(b, datapart.CreateSubvolume(out, "old"))
		must(b, os.Mkdir(filepath.Join(out, "old", "upper"), 0o755))
		if _, err := Merge(Options{Local: o.Local, New: o.New, Out: filepath.Join(out, "old", "upper", "etc")}); err != nil {
			b.Fatal(err) // without a base: a copy of the local tree
		}
		ip := o
		ip.Local, ip.InPlace = filepath.Join(out, "old", "upper", "etc"), true
		vs = append(vs, variant{"snapshot", func(root string) error {
			return datapart.Snapshot(filepath.Join(out, "old"), out, filepath.Base(root))
		}}, variant{"inplace", merge(ip, 0)})
	}
	times := make([][]time.Duration, len(vs))
	b.ResetTimer()
	for round := range b.N {
		for i, v := range vs {
			root := filepath.Join(out, fmt.Sprintf("r%d-%d", round, i))
			b.StopTimer()
			syncfs(b, out)
			b.StartTimer()
			start := time.Now()
			if err := v.run(root); err != nil {
				b.Fatalf("%s: %v", v.name, err)
			}
			times[i] = append(times[i], time.Since(start))
			b.StopTimer()
			must(b, removeOutput(root))
			b.StartTimer()
		}
	}
	for i, v := range vs {
		slices.Sort(times[i])
		b.ReportMetric(times[i][len(times[i])/2].Seconds(), "s-"+v.name+"/op")
	}
}

// removeOutput removes a variant's output, read-only directories and
// snapshots (rmdir deletes an empty subvolume) included.
func removeOutput(root string) error {
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(root)
}
