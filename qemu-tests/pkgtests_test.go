// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

// vmPackageTests are the package tests that need a kernel with
// device-mapper and loop devices, which the host kernels of keel's test
// machines lack (they skip there), and the modules they need.
var vmPackageTests = []struct {
	pkg, run string
	copy     []string // package files the tests read, copied next to the binary
	pass     []string // tests that must pass in the package's own output
}{
	{pkg: "dm", run: "^TestCreateKernel", pass: []string{"TestCreateKernel", "TestCreateKernelCleansUp"}},
	{pkg: "verity", run: "^TestOpenKernel$", pass: []string{"TestOpenKernel"}},
	{pkg: "unlock", run: "^TestMapKernel$", copy: []string{"testdata"}, pass: []string{"TestMapKernel"}},
}

var vmTestModules = "loop,dm_mod,dm_zero,dm_verity,dm_crypt,xts,ecb"

// TestPackageTestsInVM runs the privileged package tests against the test
// kernel, as u-root runs pkg/mount's tests through vmtest: the test binaries
// (`go test -c`) and a small /init (qemu-tests/pkgrun) in an initramfs that
// mkinitrd fills with the dm and loop modules. verity's dm-verity tables,
// unlock's dm-crypt mapping and dm's create/reload/remove then meet the real
// kernel, not a fake.
func TestPackageTestsInVM(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	root, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "pkgs")
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	for _, p := range vmPackageTests {
		pd := filepath.Join(pkgs, p.pkg)
		goCmd(t, root, env, "test", "-c", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(pd, p.pkg+".test"), "./"+p.pkg)
		args := "-test.v\n-test.count=1\n-test.run=" + p.run + "\n"
		if err := os.WriteFile(filepath.Join(pd, "args"), []byte(args), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range p.copy {
			run(t, "cp", "-r", filepath.Join(root, p.pkg, c), pd)
		}
	}
	runner := filepath.Join(dir, "pkgrun")
	goCmd(t, root, env, "build", "-trimpath", "-ldflags=-s -w", "-o", runner, "./qemu-tests/pkgrun")
	img := filepath.Join(dir, "initrd.img")
	run(t, keelTools(t).mkinitrd, "--out", img, "--kver", vm.KVer(t), "--init", runner, "--shell", "none",
		"--no-default-modules", "--modules", vmTestModules, "--add", pkgs+":/pkgs")

	m := vm.Start(t, vm.Options{Initrd: img})
	m.Expect("KEEL-PKGTEST: done")
	m.ExpectPowerOff()
	out := m.Output()
	// The runner runs the packages in turn (in name order), each ending
	// with its exit line: a package's own output is what comes before its
	// exit line, after the one before it.
	own, codes, last := map[string]string{}, map[string]string{}, 0
	for _, ix := range regexp.MustCompile(`KEEL-PKGTEST: (\S+) exit (\d+)`).FindAllStringSubmatchIndex(out, -1) {
		pkg := out[ix[2]:ix[3]]
		own[pkg], codes[pkg], last = out[last:ix[0]], out[ix[4]:ix[5]], ix[1]
	}
	for _, p := range vmPackageTests {
		if codes[p.pkg] != "0" {
			t.Errorf("%s: the package tests failed in the VM, exit %q (console: %s)", p.pkg, codes[p.pkg], m.LogPath())
		}
		// Each selected test must have run, not skipped for want of a kernel.
		for _, name := range p.pass {
			if !regexp.MustCompile(`(?m)^--- PASS: ` + name + ` `).MatchString(own[p.pkg]) {
				t.Errorf("%s.%s did not pass in the VM (skipped or failed; console: %s)", p.pkg, name, m.LogPath())
			}
		}
	}
	if strings.Contains(out, "--- SKIP") {
		t.Errorf("tests skipped in the VM, which has device-mapper and loop devices (console: %s)", m.LogPath())
	}
}

// goCmd runs the go tool in dir with env, failing t with its output.
func goCmd(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = dir, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
