// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeQEMU puts a qemu-system-x86_64 first in PATH that runs script (sh)
// and counts its runs in the returned file.
func fakeQEMU(t *testing.T, script string) (runs string) {
	t.Helper()
	dir := t.TempDir()
	runs = filepath.Join(dir, "runs")
	body := "#!/bin/sh\necho run >> " + runs + "\nn=$(wc -l < " + runs + ")\n" + script
	if err := os.WriteFile(filepath.Join(dir, "qemu-system-x86_64"), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return runs
}

func fakeKernel(t *testing.T) string {
	t.Helper()
	k := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(k, []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

func countRuns(t *testing.T, runs string) int {
	t.Helper()
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

// TestRelaunchEarlyCrash: QEMU aborting by itself before the guest's init
// ran is started again, once, and the test sees only the second run.
func TestRelaunchEarlyCrash(t *testing.T) {
	runs := fakeQEMU(t, `if [ "$n" = 1 ]; then echo "pci 0000:00:01.0: BAR 1"; kill -ABRT $$; fi
echo "`+initStarted+`"
echo "keel: up"
`)
	v := Start(t, Options{Kernel: fakeKernel(t)})
	if line := v.Expect("keel: up"); line != "keel: up" {
		t.Errorf("matched %q: want the second run's line only", line)
	}
	v.Wait()
	if n := countRuns(t, runs); n != 2 {
		t.Errorf("QEMU ran %d times, want 2", n)
	}
	log, err := os.ReadFile(v.LogPath())
	if err != nil || !strings.Contains(string(log), "QEMU crashed") || !strings.Contains(string(log), "BAR 1") {
		t.Errorf("log %s: want the first run's lines and the restart's note (%v):\n%s", v.LogPath(), err, log)
	}
}

// TestNoRelaunchAfterInit: a crash once the guest's init runs (the disks
// may have changed) or a second early crash ends the run with QEMU's
// error.
func TestNoRelaunchAfterInit(t *testing.T) {
	for name, script := range map[string]string{
		"after init":    `echo "` + initStarted + `"; kill -ABRT $$`,
		"crashes again": `echo "pci 0000:00:01.0"; kill -ABRT $$`,
	} {
		t.Run(name, func(t *testing.T) {
			runs := fakeQEMU(t, script)
			v := Start(t, Options{Kernel: fakeKernel(t)})
			<-v.done
			if v.exitErr == nil || !strings.Contains(v.exitErr.Error(), "abort") {
				t.Errorf("exit: %v, want QEMU's abort", v.exitErr)
			}
			want := 1
			if name == "crashes again" {
				want = 2
			}
			if n := countRuns(t, runs); n != want {
				t.Errorf("QEMU ran %d times, want %d", n, want)
			}
		})
	}
}
