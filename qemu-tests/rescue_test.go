// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestRescueShell drives keel's built-in emergency shell after a failed
// boot through what repairing by hand takes: finding the disks, loading a
// module, mounting, reading raw bytes, writing, unmounting, the kernel log,
// running a program; exit then reboots.
func TestRescueShell(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	img := vm.MkExt4(t, payloadTree(t, "rescued"), 32, "scratchfs")
	disk := vm.NewDisk(t, "", []vm.Part{{Name: "scratch", SizeMiB: 33, Content: img}})
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "root=PARTLABEL=nothing rd.timeout=2"})
	m.Expect("keel: BOOT FAILED:")
	m.Expect("keel rescue shell; help lists its commands.")
	m.Expect("keel# ")
	// rd.timeout=2 ends the boot fast; lsblk is one look at sysfs, so wait
	// for the kernel to have read the disk's table (it came 6.7 s after
	// keel's start in one loaded CI run). A hang guard, not a timed claim.
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(m.Output(), " vda: vda1"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the kernel never read vda's partition table (no \" vda: vda1\" on the console)")
		}
	}
	steps := []struct{ send, want string }{
		// The file system type comes from the probe, the label and the
		// partition name from the superblock and the GPT.
		{"lsblk | grep vda1\n", `vda1\s+part\s+33\.0M\s+ext4\s+scratchfs\s+\S+\s+scratch`},
		// mount loads ext4 (an on-demand module the boot never needed)
		// from the initramfs' plan.
		{"mkdir -p /mnt && mount /dev/vda1 /mnt && cat /mnt/etc/keel-test-marker; echo\n", `rescued`},
		{"lsmod | grep -c ext4\n", `^[1-9]\r?$`},
		{"hexdump -C -s 0x438 -n 2 /dev/vda1\n", `00000438  53 ef\s+\|S\.\|`},
		{"echo fixed > /mnt/repair && umount /mnt && mount -r /dev/vda1 /mnt && cat /mnt/repair\n", `^fixed\r?$`},
		{"dmesg | grep -c 'Run /init as init process'\n", `^1\r?$`},
		{"X=6; echo answer-$((X * 7)) \"$X\" '$X'\n", `answer-42 6 \$X`},
		// A program, not a built-in: the init refuses to boot when it is not PID 1.
		{"/init; echo status=$?\n", `must run as PID 1[\s\S]*status=2`},
		{"nosuchcmd\n", `sh: nosuchcmd: not found`},
	}
	for _, st := range steps {
		m.Send(st.send)
		m.ExpectRegexp(st.want)
		m.Expect("keel# ") // typed ahead, the echo would mix with the output
	}
	m.Send("exit\n")
	m.ExpectReboot()
}

// TestConsoleStallRepeatedInKernelLog stops the serial console's output
// with XOFF (^S, a console frozen by a keystroke) before the boot fails:
// the emergency banner cannot leave the tty, so keel repeats it in the
// kernel log, whose console write ignores the tty's flow control. XON
// releases the banner and the shell's prompt, which were kept.
func TestConsoleStallRepeatedInKernelLog(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	disk := vm.NewDisk(t, "", []vm.Part{{Name: "scratch", SizeMiB: 8}})
	// rd.timeout leaves the XOFF below ample time to arrive first.
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "root=PARTLABEL=nothing rd.timeout=5"})
	m.Expect("keel: keel starting")
	m.Send("\x13") // XOFF: the tty stops sending
	m.ExpectRegexp(`keel: the console has not sent this line in [0-9.]+s: BOOT FAILED: root device: timed out after \S+ waiting for PARTLABEL=nothing`)
	if strings.Contains(m.Output(), "keel: BOOT FAILED:") {
		t.Fatal("the banner left the console while it was stopped")
	}
	m.Send("\x11") // XON
	m.Expect("keel: BOOT FAILED: root device")
	m.Expect("keel# ")
	m.Send("exit\n")
	m.ExpectReboot()
}
