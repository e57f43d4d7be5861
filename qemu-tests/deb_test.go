// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// TestDebPackageKernelHooks installs keel's Debian package the Debian way
// (scripts/deb-image.sh: mmdebstrap --include=keel_….deb,linux-image-amd64,
// systemd-sysv), where the kernel package's postinst runs keel's
// /etc/kernel/postinst.d hook, and proves:
//   - /boot/initrd.img-KVER is keel's (its /init is the package's init, its
//     baked config names KVER), made by the hook during the kernel's
//     configuration, with no manual call;
//   - that kernel and initramfs boot the tree (ext4, plain root=) to
//     multi-user.target through keel's init;
//   - reinstalling the kernel package rebuilds the initramfs through the hook;
//   - kernel-install (systemd's) gets keel's initramfs, through
//     50-keel.install when there is no /boot/initrd.img-KVER;
//   - the hook's mkinitrd reads /etc/keel/mkinitrd.conf;
//   - removing the kernel package removes the initramfs.
func TestDebPackageKernelHooks(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	start := time.Now()
	img := vm.BuildDebImage(t)
	t.Logf("Debian image with keel's package ready in %v (kernel %s)", time.Since(start).Round(time.Second), img.Kver)
	initrd := filepath.Join(img.Root, "boot", "initrd.img-"+img.Kver)
	built := checkHookBuilt(t, img, initrd)

	root := vm.MkExt4(t, img.Root, treeMiB(t, img.Root)+256, "")
	m := vm.Start(t, vm.Options{
		Kernel: filepath.Join(img.Root, "boot", "vmlinuz-"+img.Kver), Initrd: initrd,
		Disks: []string{root}, Cmdline: "root=/dev/vda rw", Timeout: 4 * time.Minute,
	})
	m.Expect("keel: plain root /dev/vda: root NOT VERIFIED")
	m.Expect("keel: switching root to /newroot")
	m.Expect("KEEL-SYSTEMD: multi-user reached")
	m.Kill()

	t.Run("reinstall", func(t *testing.T) { checkReinstall(t, img, initrd, built) })
	t.Run("config", func(t *testing.T) { checkConfig(t, img, initrd) })
	// Last before remove: kernel-install remove deletes depmod's files.
	t.Run("kernel-install", func(t *testing.T) { checkKernelInstall(t, img, initrd, built) })
	t.Run("remove", func(t *testing.T) {
		out := img.Chroot(t, "dpkg --purge linux-image-amd64 linux-image-"+img.Kver)
		if !strings.Contains(out, "keel: removing /boot/initrd.img-"+img.Kver) {
			t.Errorf("kernel removal: no line of keel's postrm.d hook in:\n%s", out)
		}
		if _, err := os.Stat(initrd); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after the kernel's removal: %v, want it gone", initrd, err)
		}
	})
}

// checkHookBuilt checks that the initramfs in the image is keel's and was
// built by the kernel postinst's hook, and returns its bytes.
func checkHookBuilt(t *testing.T, img vm.DebImage, initrd string) []byte {
	t.Helper()
	b, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatalf("the kernel's postinst left no initramfs: %v", err)
	}
	hookLine := "keel: building /boot/initrd.img-" + img.Kver + " for kernel " + img.Kver
	setup := strings.Index(img.Log, "Setting up linux-image-"+img.Kver)
	if hook := strings.Index(img.Log, hookLine); setup < 0 || hook < setup {
		t.Errorf("mmdebstrap's log has no %q after the kernel package's setup (at %d, hook at %d)", hookLine, setup, hook)
	}
	if baked := checkKeelInitrd(t, img, initrd); baked.Shell == "" || baked.Cmdline != "" {
		t.Errorf("%s: baked shell %q, cmdline %q: want the defaults of an empty mkinitrd.conf (builtin shell, no cmdline)", initrd, baked.Shell, baked.Cmdline)
	}
	return b
}

// bakedConf is what the tests read of /etc/keel/initrd.json.
type bakedConf struct {
	Kver    string `json:"kver"`
	Cmdline string `json:"cmdline"`
	Shell   string `json:"shell"`
}

// checkKeelInitrd checks, with the package's own mkinitrd, that initrd's
// /init is the package's init and its baked config is for the image's
// kernel, and returns that config.
func checkKeelInitrd(t *testing.T, img vm.DebImage, initrd string) bakedConf {
	t.Helper()
	mkinitrd := filepath.Join(img.Root, "usr", "bin", "mkinitrd")
	init, err := exec.Command(mkinitrd, "cat", initrd, "/init").Output()
	if err != nil {
		t.Fatalf("mkinitrd cat %s /init: %v", initrd, err)
	}
	want, err := os.ReadFile(filepath.Join(img.Root, "usr", "lib", "keel", "init"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(init, want) {
		t.Errorf("%s: /init is not the package's /usr/lib/keel/init", initrd)
	}
	conf, err := exec.Command(mkinitrd, "cat", initrd, "/etc/keel/initrd.json").Output()
	if err != nil {
		t.Fatalf("mkinitrd cat %s /etc/keel/initrd.json: %v", initrd, err)
	}
	var baked bakedConf
	if err := json.Unmarshal(conf, &baked); err != nil || baked.Kver != img.Kver {
		t.Errorf("%s: baked kver %q (%v), want %s", initrd, baked.Kver, err, img.Kver)
	}
	return baked
}

// checkConfig: the hook's mkinitrd reads /etc/keel/mkinitrd.conf, the
// package's conffile, with no flag saying so.
func checkConfig(t *testing.T, img vm.DebImage, initrd string) {
	conf := filepath.Join(img.Root, "etc", "keel", "mkinitrd.conf")
	shipped, err := os.ReadFile(conf)
	if err != nil {
		t.Fatalf("the package's conffile: %v", err)
	}
	defer func() {
		if err := os.WriteFile(conf, shipped, 0o644); err != nil {
			t.Error(err)
		}
		img.Chroot(t, "/etc/kernel/postinst.d/keel "+img.Kver)
	}()
	vm.WriteFile(t, img.Root, "etc/keel/mkinitrd.conf", string(shipped)+"cmdline=rd.timeout=17 quiet\nshell=none\n")
	out := img.Chroot(t, "/etc/kernel/postinst.d/keel "+img.Kver)
	baked := checkKeelInitrd(t, img, initrd)
	if baked.Cmdline != "rd.timeout=17 quiet" || baked.Shell != "" {
		t.Errorf("with cmdline= and shell=none in mkinitrd.conf: baked cmdline %q, shell %q\n%s", baked.Cmdline, baked.Shell, out)
	}
}

// checkReinstall replaces the initramfs with junk, reinstalls the kernel
// package and expects the hook to have rebuilt it, byte for byte as before
// (mkinitrd is reproducible).
func checkReinstall(t *testing.T, img vm.DebImage, initrd string, built []byte) {
	if err := os.WriteFile(initrd, []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vm.Install(t, img.KernelDeb, img.Root, "tmp/linux-image.deb")
	out := img.Chroot(t, "dpkg -i /tmp/linux-image.deb && rm /tmp/linux-image.deb")
	if !strings.Contains(out, "keel: building /boot/initrd.img-"+img.Kver) {
		t.Errorf("kernel reinstall: no line of keel's postinst.d hook in:\n%s", out)
	}
	b, err := os.ReadFile(initrd)
	if err != nil || !bytes.Equal(b, built) {
		t.Fatalf("after the reinstall %s is %d bytes (%v), want the %d bytes the first build made", initrd, len(b), err, len(built))
	}
}

// checkKernelInstall runs systemd's kernel-install with the BLS layout. With
// /boot/initrd.img-KVER there (the postinst.d hook's), keel's plugin leaves it
// to Debian's 85-initrd.install: the entry gets that one image, not two.
// Without it, the plugin builds the initramfs into the staging area and
// 90-loaderentry installs it in the entry directory; with another
// initrd_generator it builds nothing.
func checkKernelInstall(t *testing.T, img vm.DebImage, initrd string, built []byte) {
	if _, err := os.Stat(filepath.Join(img.Root, "usr", "bin", "kernel-install")); err != nil {
		t.Skipf("no kernel-install in the image: %v", err)
	}
	const machineID = "4b65656c746573740000000000000001" // scripts/test-root-hooks
	entry := filepath.Join(img.Root, "efi", machineID, img.Kver)
	add := "BOOT_ROOT=/efi MACHINE_ID=" + machineID + " kernel-install --verbose add " + img.Kver + " /boot/vmlinuz-" + img.Kver
	remove := "BOOT_ROOT=/efi MACHINE_ID=" + machineID + " kernel-install remove " + img.Kver
	img.Chroot(t, "mkdir -p /efi/loader/entries /efi/"+machineID)

	out := img.Chroot(t, add)
	if b, err := os.ReadFile(filepath.Join(entry, "initrd.img-"+img.Kver)); err != nil || !bytes.Equal(b, built) {
		t.Errorf("kernel-install add with %s: the entry's initrd.img-%s: %v (equal to keel's: %v)\n%s", initrd, img.Kver, err, bytes.Equal(b, built), out)
	}
	if _, err := os.Stat(filepath.Join(entry, "initrd")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("kernel-install add with %s: keel's plugin built a second initrd: %v", initrd, err)
	}
	img.Chroot(t, remove+" && mv /boot/initrd.img-"+img.Kver+" /boot/keel-test-initrd")
	defer img.Chroot(t, "mv /boot/keel-test-initrd /boot/initrd.img-"+img.Kver)

	out = img.Chroot(t, add)
	if b, err := os.ReadFile(filepath.Join(entry, "initrd")); err != nil || !bytes.Equal(b, built) {
		t.Errorf("kernel-install add without %s: the entry's initrd: %v (equal to keel's: %v)\n%s", initrd, err, bytes.Equal(b, built), out)
	}
	// Another generator configured: keel's plugin stays out of its way.
	img.Chroot(t, remove+" && mkdir -p /etc/kernel && echo initrd_generator=dracut >/etc/kernel/install.conf")
	out = img.Chroot(t, add+" && rm /etc/kernel/install.conf")
	if _, err := os.Stat(filepath.Join(entry, "initrd")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("with initrd_generator=dracut, %s/initrd: %v, want none\n%s", entry, err, out)
	}
	img.Chroot(t, remove)
}

// treeMiB is the size of the files under dir in MiB.
func treeMiB(t *testing.T, dir string) int {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		total += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return int(total >> 20)
}
