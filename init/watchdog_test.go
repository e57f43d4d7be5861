// SPDX-License-Identifier: Apache-2.0

package main

import (
	"slices"
	"testing"
	"time"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
)

// TestEagerModulesLeaveWatchdogs: without rd.watchdog= no watchdog driver
// loads (a loaded driver may arm a watchdog the firmware left running), and
// softdog never loads eagerly, even when the image carries it.
func TestEagerModulesLeaveWatchdogs(t *testing.T) {
	plan := []bakedconf.Module{
		{Name: "virtio_blk"}, {Name: "watchdog"},
		{Name: "i6300esb", Deps: []string{"watchdog"}}, {Name: "iTCO_vendor_support"},
		{Name: "iTCO_wdt", Deps: []string{"watchdog", "iTCO_vendor_support"}}, {Name: "lpc_ich"},
		{Name: "softdog", Deps: []string{"watchdog"}},
	}
	var got []string
	for _, m := range eagerModules(plan) {
		got = append(got, m.Name)
	}
	if !slices.Equal(got, []string{"virtio_blk"}) {
		t.Errorf("eager modules %v, want only virtio_blk", got)
	}
}

// TestWatchdogLease: each phase gets the device wait plus the work margin;
// a prompt or a shell holds the watchdog for a human; nothing happens
// without rd.watchdog=.
func TestWatchdogLease(t *testing.T) {
	b := &boot{cfg: kargs.Defaults(), log: newLogger(nil)}
	b.watchdogProgress() // no watchdog: no-op, no panic
	b.watchdogHuman()
	b.settleWatchdog()
	b.handOffWatchdog()
	if b.rep != nil && b.rep.Watchdog != nil {
		t.Error("a report watchdog without rd.watchdog=")
	}
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	l := b.workLease(now)
	if l.Human || !l.Until.Equal(now.Add(30*time.Second+watchdogWork)) {
		t.Errorf("work lease %+v: want until rd.timeout + %v", l, watchdogWork)
	}
	if !l.Feeds(now.Add(5*time.Minute)) || l.Feeds(now.Add(6*time.Minute)) {
		t.Errorf("work lease %+v: want fed 5 min in, not 6 min in", l)
	}
}
