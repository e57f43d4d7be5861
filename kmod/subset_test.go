// SPDX-License-Identifier: Apache-2.0

package kmod

import (
	"reflect"
	"testing"

	"github.com/keel-boot/keel/bakedconf"
)

func modNames(mods []bakedconf.Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

func TestClosureAndWithout(t *testing.T) {
	plan := []bakedconf.Module{
		{Name: "virtio_blk"}, {Name: "crc32c_generic"}, {Name: "raid6_pq"},
		{Name: "btrfs", Deps: []string{"crc32c_generic", "raid6_pq"}},
		{Name: "ext4", Deps: []string{"crc32c_generic"}}, {Name: "squashfs"},
	}
	if got, want := modNames(Closure(plan, "btrfs", "xfs")), []string{"crc32c_generic", "raid6_pq", "btrfs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Closure(btrfs) = %v, want %v", got, want)
	}
	if got, want := modNames(Closure(plan, "dm-verity")), []string(nil); !reflect.DeepEqual(got, want) {
		t.Errorf("Closure(absent) = %v, want none", got)
	}
	plan = append(plan, bakedconf.Module{Name: "dm_mod"}, bakedconf.Module{Name: "dm_verity", Deps: []string{"dm_mod"}},
		bakedconf.Module{Name: "dm_crypt", Deps: []string{"dm_mod"}})
	eager := Eager(plan, "btrfs", "ext4", "dm-crypt")
	if got, want := modNames(eager), []string{"virtio_blk", "squashfs", "dm_mod", "dm_verity"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Eager = %v, want %v", got, want)
	}
	loaded := map[string]bool{}
	for _, m := range eager {
		loaded[m.Name] = true
	}
	pending := Pending(Closure(plan, "dm_crypt", "ext4"), loaded)
	if got, want := modNames(pending), []string{"crc32c_generic", "ext4", "dm_crypt"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Pending = %v, want %v", got, want)
	}
	if errs := Load(pending, "/", func(string, string) error { return nil }); len(errs) != 0 {
		t.Errorf("Load(Pending) = %v: want a self-contained plan", errs)
	}
}
