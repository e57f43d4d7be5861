// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"sync"

	"github.com/keel-boot/keel/bakedconf"
)

// limiter lets at most n loads run at once and hands a freed place to the
// waiting load of the highest priority, the one that asked first on a tie.
// The zero value is ready; acquire gives the limit on each call.
type limiter struct {
	mu      sync.Mutex
	running int
	seq     int
	waiting []*waiter
}

type waiter struct {
	prio, seq int
	ready     chan struct{}
}

// acquire waits for a place among n.
func (l *limiter) acquire(n, prio int) {
	l.mu.Lock()
	if l.running < n && len(l.waiting) == 0 {
		l.running++
		l.mu.Unlock()
		return
	}
	w := &waiter{prio: prio, seq: l.seq, ready: make(chan struct{})}
	l.seq++
	l.waiting = append(l.waiting, w)
	l.mu.Unlock()
	<-w.ready
}

// release gives the place back, or passes it to the best waiting load.
func (l *limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.waiting) == 0 {
		l.running--
		return
	}
	best := 0
	for i, w := range l.waiting {
		b := l.waiting[best]
		if w.prio > b.prio || w.prio == b.prio && w.seq < b.seq {
			best = i
		}
	}
	w := l.waiting[best]
	l.waiting = append(l.waiting[:best], l.waiting[best+1:]...)
	close(w.ready) // the place passes on: running is unchanged
}

// Heights gives each module of plan the length of the longest chain of
// modules of plan that need it, directly or not (0 for a module nothing
// needs): scsi_common, under scsi_mod, libata, libahci and ahci, has 4.
// Loaded first, the bottom of a long chain lets the chain's top start
// sooner (critical path first). A cycle, which Load refuses, ends the walk.
func Heights(plan []bakedconf.Module) map[string]int {
	users := map[string][]string{}
	for _, m := range plan {
		for _, d := range m.Deps {
			users[d] = append(users[d], m.Name)
		}
	}
	h := make(map[string]int, len(plan))
	var height func(name string, depth int) int
	height = func(name string, depth int) int {
		if v, ok := h[name]; ok {
			return v
		}
		best := 0
		if depth <= len(plan) {
			for _, u := range users[name] {
				best = max(best, 1+height(u, depth+1))
			}
		}
		h[name] = best
		return best
	}
	for _, m := range plan {
		height(m.Name, 0)
	}
	return h
}
