// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// prefetchWorkers is how many reads prefetch keeps in flight.
const prefetchWorkers = 8

// prefetch reads, in parallel, the regular files the merge is about to
// compare: every local file and the same paths in base and new. The merge
// itself reads one file at a time, and under emulation, or on a cold disk,
// each read waits for the device; in flight together the waits overlap and
// the merge then finds the page cache warm. It changes nothing and ignores
// errors: the merge reports what matters.
func prefetch(o Options) {
	var rels []string
	filepath.WalkDir(o.Local, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(o.Local, p)
			rels = append(rels, rel)
		}
		return nil
	})
	work := make(chan string)
	var wg sync.WaitGroup
	for range prefetchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				readRegular(p)
			}
		}()
	}
	for _, rel := range rels {
		for _, root := range []string{o.Local, o.Base, o.New} {
			if root != "" {
				work <- filepath.Join(root, rel)
			}
		}
	}
	close(work)
	wg.Wait()
}

// readRegular reads path when it is a regular file (never a fifo, a device
// or through a symlink).
func readRegular(path string) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return
	}
	io.Copy(io.Discard, f)
}
