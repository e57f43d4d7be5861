// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
)

// TestStartModules: the early-mounts phase starts the baked plan's eager
// modules (not the on-demand file systems) from the baked configuration
// alone, and leaves the configuration to the config phase when it cannot
// be read.
func TestStartModules(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "initrd.json")
	conf := `{"version":1,"modules":[` +
		`{"name":"virtio_blk","path":"kernel/drivers/block/virtio_blk.ko"},` +
		`{"name":"crc16","path":"kernel/lib/crc16.ko"},` +
		`{"name":"ext4","path":"kernel/fs/ext4/ext4.ko","deps":["crc16"]}]}`
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var loaded []string
	load := func(p, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		loaded = append(loaded, p)
		return nil
	}
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), rep: &report.Report{}}
	b.startModules(path, load)
	if b.baked == nil || len(b.baked.Modules) != 3 || b.mods == nil || b.storageLoaded == nil {
		t.Fatalf("baked %+v, session %v, storage channel %v: want the plan read and its loads started", b.baked, b.mods, b.storageLoaded)
	}
	<-b.storageLoaded
	b.waitBackground(-1)
	if len(loaded) != 1 || loaded[0] != "/kernel/drivers/block/virtio_blk.ko" {
		t.Errorf("loaded %v: want the storage driver only (ext4 and crc16 load on demand)", loaded)
	}

	// With /proc mounted, the command line's file system starts too: a
	// plain root= on ext4 loads crc16 and ext4 before the config phase;
	// the devices phase then starts nothing more.
	cmdline := filepath.Join(dir, "cmdline")
	if err := os.WriteFile(cmdline, []byte("console=ttyS0 root=/dev/vda1 ro\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	loaded = nil
	b.earlyFSPrefetch(cmdline)
	b.waitBackground(-1)
	slices.Sort(loaded)
	if want := []string{"/kernel/fs/ext4/ext4.ko", "/kernel/lib/crc16.ko"}; !slices.Equal(loaded, want) {
		t.Errorf("root=/dev/vda1 in early-mounts: loaded %v, want %v", loaded, want)
	}
	loaded = nil
	first := b.fsPrefetch
	b.startFSPrefetch(kargs.Config{Root: "/dev/vda1"})
	b.waitBackground(-1)
	// The session never loads a module twice: what shows that the devices
	// phase started nothing is the prefetch record, kept as it was.
	if first == nil || b.fsPrefetch != first || len(loaded) != 0 {
		t.Errorf("the devices phase after early-mounts started it again: prefetch %+v (was %+v), loaded %v", b.fsPrefetch, first, loaded)
	}
	// A command line that needs no file system up front starts none.
	quiet := &boot{log: newLogger(&console), rep: &report.Report{}}
	quiet.startModules(path, load)
	if err := os.WriteFile(cmdline, []byte("console=ttyS0 overlay=tmpfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	<-quiet.storageLoaded
	loaded = nil
	quiet.earlyFSPrefetch(cmdline)
	quiet.waitBackground(-1)
	if len(loaded) != 0 {
		t.Errorf("slot boot without a data partition: loaded %v before any disk", loaded)
	}

	missing := &boot{log: newLogger(&console), rep: &report.Report{}}
	missing.startModules(filepath.Join(dir, "absent.json"), load)
	if missing.baked != nil || missing.mods != nil {
		t.Errorf("unreadable configuration: baked %+v, session %v: want nothing started", missing.baked, missing.mods)
	}
}
