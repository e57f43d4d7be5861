// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keel-boot/keel/bakedconf"
)

func TestHeights(t *testing.T) {
	plan := []bakedconf.Module{
		mod("scsi_common"), mod("scsi_mod", "scsi_common"), mod("libata", "scsi_mod"),
		mod("libahci", "libata"), mod("ahci", "libahci", "libata"),
		mod("sd_mod", "scsi_mod"), mod("raid6_pq"), mod("btrfs", "raid6_pq"), mod("virtio_blk"),
	}
	got := Heights(plan)
	want := map[string]int{"scsi_common": 4, "scsi_mod": 3, "libata": 2, "libahci": 1, "ahci": 0,
		"sd_mod": 0, "raid6_pq": 1, "btrfs": 0, "virtio_blk": 0}
	if !maps.Equal(got, want) {
		t.Errorf("Heights = %v, want %v", got, want)
	}
	// A cycle (which Load refuses by checkGraph) ends instead of recursing forever.
	if h := Heights([]bakedconf.Module{mod("a", "b"), mod("b", "a")}); len(h) != 2 {
		t.Errorf("Heights of a cycle = %v", h)
	}
}

// TestSessionLimit holds every load until the test releases it, and checks
// that no more than Limit limited loads run at once, that unlimited loads
// do not wait for a place, and that a freed place goes to the waiting load
// of the highest priority.
func TestSessionLimit(t *testing.T) {
	plan := []bakedconf.Module{mod("low1"), mod("low2"), mod("high"), mod("mid"), mod("driver")}
	var mu sync.Mutex
	running, started := map[string]bool{}, make(chan string, len(plan))
	limited := func(n string) bool { return n != "driver" }
	peak := 0 // the most limited loads that ran at once
	release := map[string]chan struct{}{}
	for _, m := range plan {
		release[m.Name] = make(chan struct{})
	}
	name := func(path string) string { return strings.TrimSuffix(strings.TrimPrefix(path, "/root/m/"), ".ko") }
	load := func(path, _ string) error {
		n := name(path)
		mu.Lock()
		running[n] = true
		now := 0
		for r := range running {
			if limited(r) {
				now++
			}
		}
		peak = max(peak, now)
		mu.Unlock()
		started <- n
		<-release[n]
		mu.Lock()
		delete(running, n)
		mu.Unlock()
		return nil
	}
	s := &Session{Root: "/root", Loader: load, Limit: 2,
		Limited:  func(m bakedconf.Module) bool { return limited(m.Name) },
		Priority: map[string]int{"high": 10, "mid": 5}}
	// low1 and low2 take both places first, then the rest queue.
	done := make(chan []error)
	go func() { done <- s.Load(plan[:2]) }()
	got := []string{<-started, <-started}
	slices.Sort(got)
	if !slices.Equal(got, []string{"low1", "low2"}) {
		t.Fatalf("first loads = %v, want low1 and low2", got)
	}
	rest := make(chan []error)
	go func() { rest <- s.Load(plan[2:]) }()
	if n := <-started; n != "driver" {
		t.Fatalf("with both places taken, %s started; want only the unlimited driver", n)
	}
	// Not limited, high and mid would start beside low1 and low2 and
	// never queue.
	overLimit := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return peak > s.Limit
	}
	waitQueued(t, &s.lim, 2, overLimit)
	close(release["low1"])
	if n := <-started; n != "high" {
		t.Errorf("a freed place went to %s, want high (priority 10)", n)
	}
	close(release["low2"])
	if n := <-started; n != "mid" {
		t.Errorf("the next place went to %s, want mid", n)
	}
	mu.Lock()
	if want := map[string]bool{"high": true, "mid": true, "driver": true}; peak != s.Limit || !maps.Equal(running, want) {
		t.Errorf("%d limited loads ran at once at the most, running now %v; want %d, and high, mid and driver", peak, running, s.Limit)
	}
	mu.Unlock()
	for _, n := range []string{"high", "mid", "driver"} {
		close(release[n])
	}
	if errs := <-done; errs != nil {
		t.Error(errs)
	}
	if errs := <-rest; errs != nil {
		t.Error(errs)
	}
}

// waitQueued waits until n loads wait for a place; it fails the test once
// overLimit says more loads ran than the limit lets, which would never
// queue.
func waitQueued(t *testing.T, l *limiter, n int, overLimit func() bool) {
	t.Helper()
	for {
		l.mu.Lock()
		q := len(l.waiting)
		l.mu.Unlock()
		if q == n {
			return
		}
		if overLimit() {
			t.Fatalf("more limited loads ran at once than the limit lets (%d waiting for a place, want %d)", q, n)
		}
		runtime.Gosched()
	}
}

// TestSessionLimitPanic: a limited load that panics gives its place back.
func TestSessionLimitPanic(t *testing.T) {
	var panics int
	s := &Session{Root: "/root", Limit: 1, Limited: func(bakedconf.Module) bool { return true },
		OnPanic: func(any) { panics++ },
		Loader: func(path, _ string) error {
			if strings.HasSuffix(path, "/bad.ko") {
				panic("loader bug")
			}
			return nil
		}}
	errs := s.Load([]bakedconf.Module{mod("bad")})
	if len(errs) != 1 || panics != 1 {
		t.Fatalf("errs %v, panics %d: want the panic as bad's error", errs, panics)
	}
	if errs := s.Load([]bakedconf.Module{mod("good")}); errs != nil {
		t.Errorf("after the panic: %v", errs)
	}
}
