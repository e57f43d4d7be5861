package main

import (
	"testing"

	"github.com/keel-boot/keel/bakedconf"
)

func TestPrefetchType(t *testing.T) {
	hostOnly := []bakedconf.Module{{Name: "virtio_blk"}, {Name: "crc16"}, {Name: "ext4", Deps: []string{"crc16"}}}
	generic := append(hostOnly, bakedconf.Module{Name: "btrfs"}, bakedconf.Module{Name: "xfs"})
	for _, tt := range []struct {
		name string
		mods []bakedconf.Module
		want string
		out  string
	}{
		{"host-only ext4", hostOnly, "", "ext4"},
		{"generic: the first type tried", generic, "", "ext4"},
		{"rootfstype in the plan", generic, "xfs", "xfs"},
		{"rootfstype built in or missing", generic, "f2fs", ""},
		{"no file-system module", []bakedconf.Module{{Name: "virtio_blk"}}, "", ""},
	} {
		if got := prefetchType(tt.mods, tt.want); got != tt.out {
			t.Errorf("%s: prefetchType = %q, want %q", tt.name, got, tt.out)
		}
	}
}
