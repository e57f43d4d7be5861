// SPDX-License-Identifier: Apache-2.0

package etcmerge

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/keel-boot/keel/datapart"
)

// A power cut after any step of building a new upper with its merged /etc
// (the data partition's steps and every entry the merge writes) leaves no
// upper; the next boot merges again from the same inputs and gets exactly
// what an uninterrupted merge gives; in place too (the old upper's etc/
// copied first, as a btrfs snapshot of it would be).
func TestMergePowerCut(t *testing.T) {
	for _, inPlace := range []bool{false, true} {
		t.Run(fmt.Sprintf("in place %v", inPlace), func(t *testing.T) { testMergePowerCut(t, inPlace) })
	}
}

func testMergePowerCut(t *testing.T, inPlace bool) {
	o := trees(t,
		map[string]string{
			"hostname": "f box", "motd": "f mine", "gone": "w", "app/a.conf": "f 1", "app/b.conf": "f 2",
			"passwd": "f root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n", "machine-id": "f 0123",
		},
		map[string]string{"hostname": "f debian", "motd": "f v1", "gone": "f g", "passwd": "f root:x:0:0::/root:/bin/sh\n"},
		map[string]string{"hostname": "f debian", "motd": "f v2", "gone": "f g", "passwd": "f root:x:0:0::/root:/bin/sh\n_svc:x:999:999::/:/bin/false\n"})
	build := func(dir string, step func(string) error) error {
		return datapart.NewUpper{Dir: dir, Step: step, Fill: func(tmp string) error {
			mo := o
			mo.Out, mo.Step, mo.InPlace = filepath.Join(tmp, "upper", "etc"), step, inPlace
			if inPlace {
				if out, err := exec.Command("cp", "-a", o.Local, mo.Out).CombinedOutput(); err != nil {
					return fmt.Errorf("cp -a: %v: %s", err, out)
				}
			}
			r, err := Merge(mo)
			if err != nil {
				return err
			}
			b, _ := json.Marshal(r)
			return os.WriteFile(filepath.Join(tmp, datapart.EtcMergeFile), b, 0o644)
		}}.Create()
	}
	ref := filepath.Join(t.TempDir(), "a", "img")
	must(t, build(ref, nil))
	want := dump(t, ref)
	if len(want) < 10 {
		t.Fatalf("reference upper too small to test: %v", want)
	}
	cut := errors.New("power cut")
	steps := 0
	for k := 1; ; k++ {
		dir := filepath.Join(t.TempDir(), "a", "img")
		n := 0
		err := build(dir, func(string) error {
			if n++; n == k {
				return cut
			}
			return nil
		})
		if err == nil {
			steps = k - 1
			break
		}
		if !errors.Is(err, cut) {
			t.Fatalf("step %d: %v", k, err)
		}
		if _, err := os.Lstat(dir); err != nil {
			must(t, build(dir, nil)) // the next boot: the upper is fresh again
		} // else cut after the rename: the upper is complete

		if got := dump(t, dir); !reflect.DeepEqual(got, want) {
			t.Fatalf("cut after step %d, merged again:\n got %v\nwant %v", k, got, want)
		}
	}
	if steps < 12 {
		t.Errorf("only %d steps were interrupted: the merge's own steps are not seen", steps)
	}
}
