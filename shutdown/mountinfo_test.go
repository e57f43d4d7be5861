// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"slices"
	"testing"
)

// oldrootInfo is the mount table the shutdown program sees after
// systemd-shutdown's pivot on a keel system with a LUKS data partition:
// the old root's binds and keel's mounts below /oldroot/run, which
// systemd-shutdown may already have unmounted.
const oldrootInfo = `30 1 0:27 / /oldroot rw,relatime - overlay overlay rw,lowerdir=/run/keel/lower,upperdir=/run/keel/data/@overlay/a/os/upper,workdir=/run/keel/data/@overlay/a/os/work
31 30 0:5 / /oldroot/dev rw,nosuid - devtmpfs devtmpfs rw,mode=755
32 30 0:22 / /oldroot/proc rw,nosuid,nodev,noexec - proc proc rw
33 30 0:21 / /oldroot/sys rw,nosuid,nodev,noexec - sysfs sysfs rw
34 30 0:25 / /oldroot/run rw,nosuid,nodev - tmpfs tmpfs rw,mode=755
35 34 253:0 / /oldroot/run/keel/lower ro,nodev - squashfs /dev/mapper/keel-root-a ro
36 34 253:1 / /oldroot/run/keel/data rw - btrfs /dev/mapper/keel-data rw,subvolid=5
37 30 253:1 /@var /oldroot/var rw - btrfs /dev/mapper/keel-data rw,subvolid=5
38 30 253:1 /@home /oldroot/home rw - btrfs /dev/mapper/keel-data rw,subvolid=5
39 31 0:23 / /oldroot/dev/pts rw - devpts devpts rw
40 33 0:26 / /oldroot/sys/fs/cgroup rw - cgroup2 cgroup2 rw
41 1 0:25 /initramfs /run rw - tmpfs tmpfs rw
42 37 0:40 / /oldroot/var/my\040dir ro - tmpfs tmp\134fs rw
1 0 0:25 /initramfs / rw - tmpfs tmpfs rw
`

func points(ms []MountInfo) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Point)
	}
	return out
}

func TestParseMountinfo(t *testing.T) {
	ms, err := ParseMountinfo([]byte(oldrootInfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 14 {
		t.Fatalf("%d mounts, want 14", len(ms))
	}
	m := ms[12]
	if m.Point != "/oldroot/var/my dir" || m.Source != `tmp\fs` || !m.ReadOnly() || m.Parent != 37 {
		t.Errorf("escaped line: %+v", m)
	}
	if d := ms[6]; d.Dev != "253:1" || d.FSType != "btrfs" || d.Source != "/dev/mapper/keel-data" || d.Super != "rw,subvolid=5" || d.ReadOnly() {
		t.Errorf("data line: %+v", d)
	}
	for _, bad := range []string{
		"1 2 3",
		"x 1 0:1 / / rw - ext4 /dev/a rw",
		"1 1 01 / / rw - ext4 /dev/a rw",
		"1 1 0:1 / relative rw - ext4 /dev/a rw",
		"1 1 0:1 / / rw ext4 /dev/a rw",
		"1 1 0:1 / / rw -",
	} {
		if _, err := ParseMountinfo([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestUnmountOrder(t *testing.T) {
	ms, err := ParseMountinfo([]byte(oldrootInfo))
	if err != nil {
		t.Fatal(err)
	}
	got := points(UnmountOrder(ms, OldRoot))
	want := []string{
		"/oldroot/home",
		"/oldroot/var/my dir", "/oldroot/var",
		"/oldroot/run/keel/data", "/oldroot/run/keel/lower", "/oldroot/run",
		"/oldroot/sys/fs/cgroup", "/oldroot/sys",
		"/oldroot/proc",
		"/oldroot/dev/pts", "/oldroot/dev",
		"/oldroot",
	}
	if !slices.Equal(got, want) {
		t.Errorf("order\n got %q\nwant %q", got, want)
	}
	// An overmount is the child of what it covers: it goes first.
	over := []MountInfo{
		{ID: 10, Parent: 1, Point: "/oldroot"},
		{ID: 11, Parent: 10, Point: "/oldroot/var"},
		{ID: 12, Parent: 11, Point: "/oldroot/var"},
		{ID: 13, Parent: 1, Point: "/oldrootx"},
	}
	if got := points(UnmountOrder(over, OldRoot)); !slices.Equal(got, []string{"/oldroot/var", "/oldroot/var", "/oldroot"}) {
		t.Errorf("overmount order %q", got)
	}
	if o := UnmountOrder(over, OldRoot); o[0].ID != 12 {
		t.Errorf("first %+v: want the overmount 12", o[0])
	}
}

func TestUnmountOrderLoop(t *testing.T) {
	loop := []MountInfo{{ID: 1, Parent: 2, Point: "/oldroot/a"}, {ID: 2, Parent: 1, Point: "/oldroot/b"}, {ID: 3, Parent: 3, Point: "/oldroot"}}
	if got := UnmountOrder(loop, OldRoot); len(got) != 3 {
		t.Errorf("loop: %d mounts, want each once", len(got))
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	for _, s := range []string{"", "/plain", "/a b\tc\nd\\e", `\777`, `\0`} {
		if got := Unescape(Escape(s)); got != s {
			t.Errorf("Unescape(Escape(%q)) = %q", s, got)
		}
	}
	if Unescape(`\400`) != `\400` {
		t.Error(`\400 is not a byte: kept as it is`)
	}
}

// FuzzMountinfo: no input panics the parser or the order; the order holds
// only mounts below the top, each once, every child before its parent.
func FuzzMountinfo(f *testing.F) {
	f.Add([]byte(oldrootInfo), "/oldroot")
	f.Add([]byte("1 1 0:1 / / rw - ext4 /dev/a rw\n2 1 0:2 / /x rw - a b c"), "/")
	f.Fuzz(func(t *testing.T, b []byte, top string) {
		ms, err := ParseMountinfo(b)
		if err != nil {
			return
		}
		order := UnmountOrder(ms, top)
		pos := map[int]int{}
		for i, m := range order {
			if !Under(m.Point, top) {
				t.Fatalf("%q is not below %q", m.Point, top)
			}
			if _, dup := pos[m.ID]; dup {
				t.Fatalf("mount %d twice", m.ID)
			}
			pos[m.ID] = i
		}
		for _, m := range order {
			if p, ok := pos[m.Parent]; ok && m.Parent != m.ID && p < pos[m.ID] && !inLoop(ms, m.ID) {
				t.Fatalf("mount %d comes after its parent %d", m.ID, m.Parent)
			}
		}
	})
}

// inLoop reports whether id's parent chain comes back to it.
func inLoop(ms []MountInfo, id int) bool {
	parent := map[int]int{}
	for _, m := range ms {
		if _, ok := parent[m.ID]; !ok {
			parent[m.ID] = m.Parent
		}
	}
	cur := id
	for range len(ms) + 1 {
		p, ok := parent[cur]
		if !ok || p == cur {
			return false
		}
		if p == id {
			return true
		}
		cur = p
	}
	return true
}
