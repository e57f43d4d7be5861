// SPDX-License-Identifier: Apache-2.0

package main

import "testing"

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
