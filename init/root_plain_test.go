// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strings"
	"testing"
)

func TestWithErrorsOption(t *testing.T) {
	for _, tc := range []struct{ fstype, data, want string }{
		{"ext4", "", "errors=remount-ro"},
		{"ext4", "noatime", "noatime,errors=remount-ro"},
		{"ext4", "errors=panic", "errors=panic"}, // the operator's rootflags=
		{"ext4", "noatime,errors=continue", "noatime,errors=continue"},
		{"ext4", "noerrors=x", "noerrors=x,errors=remount-ro"},
		{"ext3", "", "errors=remount-ro"},
		{"ext2", "ro", "ro,errors=remount-ro"},
		{"btrfs", "subvol=@", "subvol=@"},
		{"squashfs", "", ""},
	} {
		if got := withErrorsOption(tc.fstype, tc.data); got != tc.want {
			t.Errorf("withErrorsOption(%q, %q) = %q, want %q", tc.fstype, tc.data, got, tc.want)
		}
	}
}

// FuzzWithErrorsOption: whatever rootflags= says, an ext2/3/4 root is
// mounted with exactly the operator's options plus errors=remount-ro when
// they name no errors= of their own; other file systems get them as they
// are.
func FuzzWithErrorsOption(f *testing.F) {
	f.Add("ext4", "noatime,errors=panic")
	f.Add("ext3", "")
	f.Add("btrfs", "subvol=@,errors=x")
	f.Fuzz(func(t *testing.T, fstype, data string) {
		got := withErrorsOption(fstype, data)
		if fstype != "ext4" && fstype != "ext3" && fstype != "ext2" {
			if got != data {
				t.Fatalf("%s %q: %q, want it unchanged", fstype, data, got)
			}
			return
		}
		given := false
		for _, o := range strings.Split(data, ",") {
			given = given || strings.HasPrefix(o, "errors=")
		}
		switch {
		case given && got != data:
			t.Fatalf("%s %q: %q, want the operator's errors= kept as is", fstype, data, got)
		case !given && data == "" && got != "errors=remount-ro", !given && data != "" && got != data+",errors=remount-ro":
			t.Fatalf("%s %q: %q, want errors=remount-ro added", fstype, data, got)
		}
	})
}
