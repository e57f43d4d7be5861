// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"reflect"
	"testing"
)

func TestChanges(t *testing.T) {
	o := trees(t,
		map[string]string{
			"hostname": "f box", "issue": "f Debian", "sudoers": "F 0440 s", "gone": "w", "new.conf": "f n",
			"apt": "o", "apt/sources.list": "f s", "resolv.conf": "l /run/r", "initctl": "p", "motd.keel-new": "f x",
			"machine-id": "f id", "cron.d/job": "f j",
		},
		map[string]string{
			"hostname": "f debian", "issue": "f Debian", "sudoers": "f s", "gone": "f g", "apt/sources.list": "f s",
			"resolv.conf": "f r", "machine-id": "f id", "cron.d/job": "f j",
		}, nil)
	got, err := Changes(o.Local, o.Base)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{
		{"/etc/apt", "opaque", "directory", true},
		{"/etc/apt/sources.list", "in opaque", "file", true},
		{"/etc/cron.d/job", "unchanged copy", "file", false},
		{"/etc/gone", "deleted", "whiteout", true},
		{"/etc/hostname", "modified", "file", true},
		{"/etc/initctl", "special", "special file", false},
		{"/etc/issue", "unchanged copy", "file", false},
		{"/etc/machine-id", "identity", "file", true},
		{"/etc/motd.keel-new", "stale copy", "file", false},
		{"/etc/new.conf", "added", "file", true},
		{"/etc/resolv.conf", "replaced", "symlink", true},
		{"/etc/sudoers", "metadata", "file", true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Changes:\n got %v\nwant %v", got, want)
	}
	if got, err := Changes(o.Local+"/missing", o.Base); err != nil || got != nil {
		t.Errorf("Changes of a missing upper: %v, %v", got, err)
	}
}
