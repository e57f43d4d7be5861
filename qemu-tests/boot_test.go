// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/report"
	"github.com/keel-boot/keel/qemu-tests/vm"
	keelreport "github.com/keel-boot/keel/report"
	slotkeys "github.com/keel-boot/keel/slots/keys"
)

// bootReport decodes the boot.json the payload printed.
func bootReport(t testing.TB, r report.Report) keelreport.Report {
	t.Helper()
	if r.BootJSON == nil {
		t.Fatal("payload saw no /run/keel/boot.json")
	}
	var br keelreport.Report
	if err := json.Unmarshal(r.BootJSON, &br); err != nil {
		t.Fatalf("boot.json %s: %v", r.BootJSON, err)
	}
	return br
}

// TestSlotBoots boots each slot of an A/B disk (different images in a and
// b), signed by a trusted key, through verity and a tmpfs overlay.
func TestSlotBoots(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "image-a"), key, "img-a")
	b := seal(t, payloadTree(t, "image-b"), key, "img-b")
	disk := abDisk(t, &a, &b)
	rd := initrd(t, "--trust", key+".pub")
	for _, slot := range []string{"a", "B"} {
		t.Run("slot="+slot, func(t *testing.T) {
			m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "slot=" + slot})
			r := m.ExpectReport()
			m.ExpectPowerOff()
			br := bootReport(t, r)
			want := strings.ToLower(slot)
			if br.Slot != want || br.Mode != "slot" || !br.Authenticated || br.HashSource != "header" || br.Overlay != "tmpfs" {
				t.Errorf("boot.json %s: want slot %s, mode slot, authenticated from the header, tmpfs overlay", r.BootJSON, want)
			}
			if pubs, err := slotkeys.LoadTrusted([]string{key + ".pub"}); err != nil || fmt.Sprint(br.TrustedKeys) != "["+base64.StdEncoding.EncodeToString(pubs[0])+"]" {
				t.Errorf("boot.json trusted_keys %q (%v): want the one baked key, for slotctl install", br.TrustedKeys, err)
			}
			if img := map[string]sealed{"a": a, "b": b}[want]; br.RootHash != img.rootHash || br.ImageID != "img-"+want {
				t.Errorf("root hash %s image %s: want %s img-%s", br.RootHash, br.ImageID, img.rootHash, want)
			}
			if r.Marker == nil || *r.Marker != "image-"+want {
				t.Errorf("marker %v: want image-%s (the slot's own image)", r.Marker, want)
			}
			if m, ok := r.Mount("/"); !ok || m.FSType != "overlay" {
				t.Errorf("/ is %+v: want overlay", m)
			}
			if m, ok := r.Mount("/run/keel/lower"); !ok || m.Source != "/dev/mapper/keel-root-"+want || m.FSType != "squashfs" {
				t.Errorf("lower is %+v: want squashfs on /dev/mapper/keel-root-%s", m, want)
			}
			if len(r.Environ) != 0 {
				t.Errorf("init environment %q: want empty (slot=%s must not leak)", r.Environ, slot)
			}
			if !r.RootWritable {
				t.Error("root not writable: want a writable overlay")
			}
			for _, p := range []string{"early-mounts", "config", "devices", "root"} {
				found := false
				for _, ph := range br.Phases {
					found = found || ph.Name == p
				}
				if !found {
					t.Errorf("phase %s missing from boot.json phases %+v", p, br.Phases)
				}
			}
		})
	}
}

// TestOverlayTmpfsForgets writes to / on one boot and finds it gone on the
// next: the tmpfs upper layer does not persist.
func TestOverlayTmpfsForgets(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	disk := abDisk(t, &a, nil)
	rd := initrd(t)
	write, err := report.WriteParam("/etc/written", "by boot 1")
	if err != nil {
		t.Fatal(err)
	}
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "slot=a overlay=tmpfs " + write + " keel.test.cat=/etc/written"})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	if c, _ := r.Cat("/etc/written"); c.Content != "by boot 1" {
		t.Fatalf("boot 1: cat /etc/written = %+v: want the write to work", c)
	}
	if br := bootReport(t, r); br.Authenticated || len(br.Warnings) == 0 {
		t.Errorf("unsigned header, no keys: authenticated %v warnings %q; want false with a warning", br.Authenticated, br.Warnings)
	}
	m = vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk.Path}, Cmdline: "slot=a overlay=tmpfs keel.test.cat=/etc/written"})
	r = m.ExpectReport()
	m.ExpectPowerOff()
	if c, _ := r.Cat("/etc/written"); !c.Missing {
		t.Errorf("boot 2: cat /etc/written = %+v: want it gone with the tmpfs", c)
	}
}

// TestOverlayOff mounts the verified image itself as /, read-only.
func TestOverlayOff(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	disk := abDisk(t, &a, nil)
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "slot=a overlay=off"})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	if r.RootWritable {
		t.Error("root writable with overlay=off: want read-only")
	}
	if mt, ok := r.Mount("/"); !ok || mt.FSType != "squashfs" || mt.Source != "/dev/mapper/keel-root-a" {
		t.Errorf("/ is %+v: want the squashfs on /dev/mapper/keel-root-a", mt)
	}
	if br := bootReport(t, r); br.Overlay != "off" {
		t.Errorf("overlay %q in boot.json, want off", br.Overlay)
	}
}

// TestSingleImage boots root= with roothash= and a plain `veritysetup
// format` hash device (systemd.verity_root_hash=), the kiosk boot chain.
func TestSingleImage(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	sq := vm.MkSquashfs(t, payloadTree(t, "single"))
	hash := t.TempDir() + "/hash.img"
	out := run(t, "veritysetup", "format", sq, hash)
	var root string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "Root" && f[1] == "hash:" {
			root = f[2]
		}
	}
	if root == "" {
		t.Fatalf("no root hash in veritysetup output:\n%s", out)
	}
	disk := vm.NewDisk(t, "", []vm.Part{
		{Name: "os", SizeMiB: sizeMiB(t, sq), Content: sq, UUID: "6a1c0e5e-2b8f-4c55-9a4e-1f0d6a3b7c21"},
		{Name: "os-hash", SizeMiB: 1, Content: hash},
	})
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path},
		Cmdline: "root=PARTUUID=6A1C0E5E-2B8F-4C55-9A4E-1F0D6A3B7C21 roothash=" + root + " systemd.verity_root_hash=/dev/vda2"})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Mode != "single" || br.RootHash != root || br.HashSource != "cmdline" || !br.Authenticated {
		t.Errorf("boot.json %s: want single mode, root hash %s from the command line", r.BootJSON, root)
	}
	if mt, ok := r.Mount("/run/keel/lower"); !ok || mt.Source != "/dev/mapper/keel-root" {
		t.Errorf("lower %+v: want /dev/mapper/keel-root", mt)
	}
}

// TestPlainExt4Root mounts root=LABEL= directly, no verity, like any
// initramfs; ext4 is loaded on demand.
func TestPlainExt4Root(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	img := vm.MkExt4(t, payloadTree(t, "plain"), 32, "plainroot")
	disk := vm.NewDisk(t, "", []vm.Part{{Name: "whatever", SizeMiB: 33, Content: img}})
	m := vm.Start(t, vm.Options{Initrd: initrd(t), Disks: []string{disk.Path}, Cmdline: "root=LABEL=plainroot"})
	r := m.ExpectReport()
	m.ExpectPowerOff()
	br := bootReport(t, r)
	if br.Mode != "plain" || br.Devices["root"] != "/dev/vda1" {
		t.Errorf("boot.json %s: want plain mode on /dev/vda1", r.BootJSON)
	}
	if mt, ok := r.Mount("/"); !ok || mt.FSType != "ext4" {
		t.Errorf("/ is %+v: want ext4", mt)
	}
	if r.Marker == nil || *r.Marker != "plain" {
		t.Errorf("marker %v, want plain", r.Marker)
	}
}

// TestRdBreak opens the shell before switch_root; leaving it boots on. The
// initramfs has busybox as its shell (mkinitrd --shell PATH) instead of
// the built-in one the other scenarios use.
func TestRdBreak(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	m := rdBreakShell(t)
	m.Send("cat /newroot/etc/keel-test-marker; echo\n")
	m.Expect("image-a")
	m.Send("exit\n")
	r := m.ExpectReport()
	m.ExpectPowerOff()
	if r.Marker == nil || *r.Marker != "image-a" {
		t.Errorf("marker %v after rd.break: want the boot to go on into image-a", r.Marker)
	}
}

// rdBreakShell boots image-a with rd.break into a busybox shell, at its
// prompt.
func rdBreakShell(t *testing.T) *vm.VM {
	a := seal(t, payloadTree(t, "image-a"), "", "img-a")
	disk := abDisk(t, &a, nil)
	m := vm.Start(t, vm.Options{Initrd: initrd(t, "--shell", "/bin/busybox"), Disks: []string{disk.Path}, Cmdline: "slot=a rd.break"})
	m.Expect("rd.break: the new root is assembled at /newroot")
	m.Expect("keel# ")
	return m
}

// TestSignalToInit: signals to PID 1 from a shell of the initramfs (busybox:
// its reboot sends SIGTERM to init, as the kernel sends SIGINT on
// Ctrl-Alt-Del) are the init's: a SIGHUP is logged and ignored, a SIGTERM
// reboots. The Go runtime used to exit on both ("Attempted to kill init",
// a kernel panic).
func TestSignalToInit(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	m := rdBreakShell(t)
	m.Send("kill -HUP 1\n")
	m.Expect("signal hangup (1) to PID 1 ignored")
	m.Send("echo alive-$((6*7))\n")
	m.Expect("alive-42")
	m.Send("kill -TERM 1\n")
	// On the console, or repeated in the kernel log when the console's
	// buffer stayed full (init's TestConsoleMomentarilyFullWaits).
	m.Expect("terminated received (Ctrl-Alt-Del")
	m.ExpectReboot()
}

// failure is a boot that must fail, with the console text that says why.
type failure struct {
	name    string
	cmdline string
	want    string // on the console after "BOOT FAILED"
	disk    func(t *testing.T) vm.Disk
	trust   bool // initrd trusts the release key
}

func failures() []failure {
	good := func(t *testing.T, key string) sealed { return seal(t, payloadTree(t, "x"), key, "img") }
	return []failure{
		{name: "wrong-roothash", cmdline: "slot=a roothash=" + strings.Repeat("ab", 32),
			want: "root hash does not match the data",
			disk: func(t *testing.T) vm.Disk { a := good(t, ""); return abDisk(t, &a, nil) }},
		{name: "untrusted-key", cmdline: "slot=a", trust: true,
			want: "not in the trusted set",
			disk: func(t *testing.T) vm.Disk { a := good(t, signingKey(t, "stranger")); return abDisk(t, &a, nil) }},
		{name: "corrupt-superblock", cmdline: "slot=a",
			// dm-verity catches it on keel's first read, before any mount.
			want: "dm-verity keel-root-a: first read failed",
			disk: func(t *testing.T) vm.Disk {
				a := good(t, "")
				d := abDisk(t, &a, nil)
				corrupt(t, d.Path, d.Part(t, "root-a").Offset+40) // inside the superblock, past the magic
				return d
			}},
		{name: "missing-partition", cmdline: "slot=b rd.timeout=15",
			want: `PARTLABEL=root-b: no system disk: no disk holds all of root-a, verity-a, root-b, verity-b (vda holds only root-a, verity-a) (seen: vda, vda1 "root-a", vda2 "verity-a")`,
			disk: func(t *testing.T) vm.Disk {
				return vm.NewDisk(t, "", []vm.Part{{Name: "root-a", SizeMiB: 1}, {Name: "verity-a", SizeMiB: 1}})
			}},
	}
}

func corrupt(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestFailuresOpenShell: each verification failure names what failed on the
// console and ends in an emergency shell that answers typed commands.
func TestFailuresOpenShell(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	for _, f := range failures() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			if f.trust {
				args = []string{"--trust", signingKey(t, "release") + ".pub"}
			}
			disk := f.disk(t)
			m := vm.Start(t, vm.Options{Initrd: initrd(t, args...), Disks: []string{disk.Path}, Cmdline: f.cmdline})
			line := m.Expect("keel: BOOT FAILED:")
			m.Expect(f.want)
			t.Logf("console: %s", line)
			shellWorks(t, m)
			m.Kill()
		})
	}
}

// TestLockedFailureReboots: the same failure with a locked initramfs shows
// the reason and reboots; there is no shell to open.
func TestLockedFailureReboots(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	a := seal(t, payloadTree(t, "x"), signingKey(t, "stranger"), "img")
	disk := abDisk(t, &a, nil)
	m := vm.Start(t, vm.Options{Initrd: initrd(t, "--locked", "--trust", key+".pub"), Disks: []string{disk.Path}, Cmdline: "slot=a rd.emergency=shell rd.break"})
	m.Expect("keel: BOOT FAILED:")
	m.Expect("not in the trusted set")
	m.ExpectReboot()
	out := m.Output()
	if strings.Contains(out, "keel# ") || strings.Contains(out, "starting emergency shell") {
		t.Error("a locked initramfs opened a shell")
	}
	if !strings.Contains(out, "rd.break") || !strings.Contains(out, "refused") {
		t.Error("the locked initramfs did not report refusing rd.break/rd.emergency=shell")
	}
}
