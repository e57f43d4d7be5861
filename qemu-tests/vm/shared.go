// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
)

// perBinary holds what a test binary makes once and shares between its tests:
// the QEMU job slots, a scratch directory, the payload and the Debian root.
// It is package state because the test binary is the unit of sharing; every
// field is guarded by its Once or mutex.
type perBinary struct {
	jobsOnce sync.Once
	jobs     chan struct{}

	scratchOnce sync.Once
	scratch     string
	scratchErr  error

	payloadOnce sync.Once
	payload     string
	payloadErr  error

	debianOnce sync.Once
	debian     string
	debianErr  error
	debianSkip string

	logMu   sync.Mutex
	logUses map[string]int
}

var shared perBinary

// acquire takes one of KEEL_QEMU_JOBS slots, blocking until one is free, and
// returns its release. Start holds a slot until QEMU exits, so however many
// tests run in parallel, at most that many guests share the CPUs.
func (b *perBinary) acquire() (release func()) {
	b.jobsOnce.Do(func() { b.jobs = make(chan struct{}, jobs()) })
	b.jobs <- struct{}{}
	var once sync.Once
	return func() { once.Do(func() { <-b.jobs }) }
}

// scratchDir returns a directory that lives as long as the test binary (Main
// removes it), for what is shared between tests.
func (b *perBinary) scratchDir() (string, error) {
	b.scratchOnce.Do(func() {
		b.scratch, b.scratchErr = os.MkdirTemp("", "keel-qemu-tests-")
		if b.scratchErr != nil {
			b.scratchErr = fmt.Errorf("scratch directory: %w", b.scratchErr)
		}
	})
	return b.scratch, b.scratchErr
}

// logName returns the log file name for the next VM of test name: NAME.log,
// then NAME.2.log, … when a test starts several.
func (b *perBinary) logName(name string) string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	if b.logUses == nil {
		b.logUses = map[string]int{}
	}
	b.logUses[name]++
	if n := b.logUses[name]; n > 1 {
		return name + "." + strconv.Itoa(n) + ".log"
	}
	return name + ".log"
}

// Main runs the tests and removes what was shared between them. Call it
// from TestMain: func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.scratch != "" {
		if err := os.RemoveAll(shared.scratch); err != nil {
			fmt.Fprintf(os.Stderr, "vm: remove scratch directory: %v\n", err)
		}
	}
	return code
}
