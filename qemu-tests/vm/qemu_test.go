// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestQEMUArgs(t *testing.T) {
	o := Options{Kernel: "/k", Initrd: "/i", Disks: []string{"/a.img", "/b,c.img"}, Cmdline: "slot=a", QEMUArgs: []string{"-S"}}
	args := strings.Join(qemuArgs(o, false), " ")
	for _, want := range []string{
		"-nodefaults", "-machine q35,accel=tcg -cpu max", "-m 1024 -smp 2", "-no-reboot", "-serial stdio",
		"-kernel /k -initrd /i", "-drive file=/a.img,if=virtio,format=raw -drive file=/b,,c.img,if=virtio,format=raw",
		"-append console=ttyS0 panic=-1 slot=a -S",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args %q: want %q", args, want)
		}
	}
	kvm := qemuArgs(Options{Kernel: "/k", MemMiB: 256, SMP: 1}, true)
	if !slices.Contains(kvm, "q35,accel=kvm") || !slices.Contains(kvm, "host") || !slices.Contains(kvm, "256") || slices.Contains(kvm, "-initrd") {
		t.Errorf("kvm args %q", kvm)
	}
	if got := kvm[len(kvm)-1]; got != baseCmdline {
		t.Errorf("cmdline %q, want %q", got, baseCmdline)
	}
}

func TestValidate(t *testing.T) {
	for _, o := range []Options{{MemMiB: -1}, {Timeout: -time.Second}, {Disks: []string{"/nonexistent.img"}}, {UEFI: true, Cmdline: "quiet"}, {UEFI: true, NoPanicOption: true}} {
		if err := o.validate(); err == nil {
			t.Errorf("validate(%+v) succeeded", o)
		}
	}
	if err := (Options{}).validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
}

func TestQuoteArgs(t *testing.T) {
	got := quoteArgs([]string{"qemu", "-append", "console=ttyS0 x='y'", ""})
	want := `qemu -append 'console=ttyS0 x='\''y'\''' ''`
	if got != want {
		t.Errorf("quoteArgs = %s, want %s", got, want)
	}
}

func TestScaledTimeout(t *testing.T) {
	t.Setenv("KEEL_QEMU_TIMEOUT_SCALE", "2.5")
	if d, err := scaled(0); err != nil || d != 300*time.Second {
		t.Errorf("scaled(0) = %v, %v; want 300s", d, err)
	}
	if d, err := scaled(time.Second); err != nil || d != 2500*time.Millisecond {
		t.Errorf("scaled(1s) = %v, %v", d, err)
	}
	for _, bad := range []string{"x", "0", "-1"} {
		t.Setenv("KEEL_QEMU_TIMEOUT_SCALE", bad)
		if _, err := scaled(0); err == nil {
			t.Errorf("KEEL_QEMU_TIMEOUT_SCALE=%s accepted", bad)
		}
	}
}

func TestSafeName(t *testing.T) {
	if got := safeName("TestA/b c:d-1.x"); got != "TestA_b_c_d-1.x" {
		t.Errorf("safeName = %q", got)
	}
}

func TestAcquireLimitsJobs(t *testing.T) {
	t.Setenv("KEEL_QEMU_JOBS", "1")
	synctest.Test(t, func(t *testing.T) {
		var b perBinary
		release := b.acquire()
		got := make(chan struct{})
		go func() {
			b.acquire()()
			close(got)
		}()
		// synctest.Wait returns once the second acquire is blocked, or
		// after it returned: no clock decides.
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("a second job started while the only slot was taken")
		default:
		}
		release()
		release() // idempotent: must not free a slot twice
		<-got
		if n := len(b.jobs); n != 0 {
			t.Errorf("%d slots still taken", n)
		}
	})
}

func TestLogName(t *testing.T) {
	var b perBinary
	got := []string{b.logName("T"), b.logName("T"), b.logName("U")}
	if want := []string{"T.log", "T.2.log", "U.log"}; !slices.Equal(got, want) {
		t.Errorf("log names %q, want %q", got, want)
	}
}
