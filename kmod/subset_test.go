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
	lazy := Closure(plan, "btrfs", "ext4")
	if got, want := modNames(Without(plan, lazy)), []string{"virtio_blk", "squashfs"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Without = %v, want %v", got, want)
	}
}
