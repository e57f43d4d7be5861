// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

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

	missing := &boot{log: newLogger(&console), rep: &report.Report{}}
	missing.startModules(filepath.Join(dir, "absent.json"), load)
	if missing.baked != nil || missing.mods != nil {
		t.Errorf("unreadable configuration: baked %+v, session %v: want nothing started", missing.baked, missing.mods)
	}
}
