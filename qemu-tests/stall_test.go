// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"testing"
	"time"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestHangIsNamed: the system disk stops answering the reads of slot a's
// image once a is chosen and its try counted (an NBD server that never
// answers a read of root-a), so the root phase's mount of the image never
// returns. Without rd.watchdog= nothing ends such a boot; the console says
// so, naming the phase, after twice the device wait (rd.timeout=15, baked),
// and again after as long once more. Before, nothing followed "slot a:".
// The device wait is also how long the system disk may take to be found:
// 3 s was too short for a loaded host (the first disk's partition scan came
// 6.7 s after keel's start in one boot of a CI run).
func TestHangIsNamed(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	system := abDisk(t, &a, nil)
	p := system.Part(t, "root-a")
	srv := vm.ServeNBD(t, system.Path)
	srv.Stall(func(off, n int64) bool { return off < p.Offset+p.Size && off+n > p.Offset })
	m := vm.Start(t, vm.Options{Initrd: initrd(t, "--cmdline", "rd.timeout=15"), QEMUArgs: srv.Drive()})
	srv.ExpectStall(m)
	m.Expect("slot a:") // printed before the attempt: the hang came after the choice
	// Go's durations: 30s, then 1m0s.
	const notice = `keel: (?:WARNING: )?the boot has made no progress for ((?:\d+m)?\d+s), in its root phase .*booted without rd\.watchdog=, so nothing will restart this machine$`
	seconds := func(d string) int {
		v, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("notice duration %q: %v", d, err)
		}
		return int(v / time.Second)
	}
	first := seconds(m.ExpectRegexp(notice)[1])
	second := seconds(m.ExpectRegexp(notice)[1])
	m.Kill()
	// The durations are rounded to seconds: the next notice comes after
	// twice the first's raw duration, which rounding can show 1 s short.
	if first < 30 || second < 2*first-1 {
		t.Errorf("notices after %d s and %d s without progress: want the first after twice rd.timeout=15, the next after twice as long", first, second)
	}
	if a := diskStatus(t, system.Path).slot(t, "a"); a.Tries != bootstate.DefaultTries-1 {
		t.Errorf("slot a %+v: want its try counted before the hang", a)
	}
}
