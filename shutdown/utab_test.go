// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"strings"
	"testing"
)

func TestUtab(t *testing.T) {
	ms, err := ParseMountinfo([]byte(`20 1 0:30 / /newroot rw - overlay overlay rw
21 19 254:0 / /run/keel/lower ro - squashfs /dev/mapper/keel-root-a ro
22 19 254:1 / /run/keel/data rw - btrfs /dev/vda6 rw,subvolid=5
23 20 254:1 /@var /newroot/var rw - btrfs /dev/vda6 rw
24 23 0:40 / /newroot/var rw - tmpfs over rw
25 20 254:1 /@home /newroot/home rw - btrfs /dev/vda6 rw
26 19 0:41 / /run/other rw - tmpfs my\040src rw
`))
	if err != nil {
		t.Fatal(err)
	}
	got := string(Utab(ms, map[string]string{
		"/newroot/var": "/var", "/newroot/home": "/home", "/run/keel/data": "/run/keel/data", "/run/other": "/run/my other",
	}))
	want := `SRC=/dev/vda6 TARGET=/run/keel/data ROOT=/ OPTS=x-initrd.mount
SRC=over TARGET=/var ROOT=/ OPTS=x-initrd.mount
SRC=/dev/vda6 TARGET=/home ROOT=/@home OPTS=x-initrd.mount
SRC=my\040src TARGET=/run/my\040other ROOT=/ OPTS=x-initrd.mount
`
	if got != want {
		t.Errorf("utab\n%s\nwant\n%s", got, want)
	}
}

// FuzzUtab: whatever the mount table, each matched mount point gives one
// line of four fields (escaping keeps spaces out of values) that unescape
// to the mount's source, the booted path and the root.
func FuzzUtab(f *testing.F) {
	f.Add([]byte("23 20 254:1 /@var /newroot/var rw - btrfs /dev/vda6 rw\n"), "/newroot/var", "/var")
	f.Fuzz(func(t *testing.T, info []byte, point, booted string) {
		ms, err := ParseMountinfo(info)
		if err != nil {
			return
		}
		out := strings.TrimSuffix(string(Utab(ms, map[string]string{point: booted})), "\n")
		if out == "" {
			for _, m := range ms {
				if m.Point == point {
					t.Fatalf("mount at %q gave no line", point)
				}
			}
			return
		}
		lines := strings.Split(out, "\n")
		if len(lines) != 1 {
			t.Fatalf("%d lines for one point", len(lines))
		}
		f := strings.Split(lines[0], " ")
		if len(f) != 4 || Unescape(strings.TrimPrefix(f[1], "TARGET=")) != booted || f[3] != "OPTS="+InitrdOption {
			t.Fatalf("line %q", lines[0])
		}
	})
}
