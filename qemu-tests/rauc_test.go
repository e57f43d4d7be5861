// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/qemu-tests/vm"
	keelreport "github.com/keel-boot/keel/report"
)

// raucScript is what the guest does in each boot of the RAUC scenario;
// keeltest=N on the kernel command line says which step. It prints
// "KEEL-RAUC: " lines on the console: rauc status as JSON, what each
// command exited with and said, and "done" once the disk is synced.
const raucScript = `#!/bin/sh
say() { echo "KEEL-RAUC: $*" >/dev/console; }
status() { say "$1 $(rauc status --output-format=json 2>&1 | tr '\n' ' ')"; }
try() { name=$1; shift; out=$("$@" 2>&1); rc=$?; say "$name rc=$rc $(echo "$out" | tr '\n' ' ')"; }
step=$(sed -n 's/.*keeltest=\([0-9]*\).*/\1/p' /proc/cmdline)
say "step $step image $(cat /etc/keel-test-image) mark-good $(systemctl is-active keel-test-rauc-mark-good.service)"
say "report $(cat /run/keel/boot.json)"
status status
mkdir -p /run/bundles
# The bundles' disk is the one keel did not choose: the kernel names the
# two virtio disks in the order their probes end, which is not fixed.
sys=$(sed -n 's/.*"system_disk":"\([^"]*\)".*/\1/p' /run/keel/boot.json)
bundles=/dev/vdb; [ "$sys" = /dev/vdb ] && bundles=/dev/vda
try mount mount -t squashfs -o ro $bundles /run/bundles
case $step in
1)
	try mark-bad-booted rauc status mark-bad booted
	systemctl stop rauc.service
	try wrong-service systemd-run --unit=keel-test-rauc-wrong -p Type=dbus -p BusName=de.pengutronix.rauc /usr/bin/rauc --mount=/run/rauc --override-boot-slot=b service
	try wrong-install rauc install /run/bundles/good.raucb
	systemctl stop keel-test-rauc-wrong.service
	mv /run/keel/boot.json /run/keel/boot.json.hidden
	try no-report systemctl start rauc.service
	mv /run/keel/boot.json.hidden /run/keel/boot.json
	systemctl reset-failed rauc.service
	say "backend-log $(journalctl -b --no-pager -o cat | grep 'slotctl rauc-backend: ' | tr '\n' ' ')"
	try install rauc install /run/bundles/good.raucb
	;;
2)
	try install rauc install /run/bundles/bad.raucb
	;;
esac
status status-after
sync
say done
`

// raucMarkGoodUnit confirms a boot through RAUC (rauc status mark-good,
// which calls the backend's set-state SLOT good) once boot-complete.target
// is reached, in place of keel-mark-good.service.
const raucMarkGoodUnit = `[Unit]
Description=keel test: confirm the boot with rauc status mark-good
Requires=boot-complete.target
After=boot-complete.target dbus.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/rauc status mark-good

[Install]
WantedBy=multi-user.target
`

const raucScriptUnit = `[Unit]
Description=keel test: the RAUC scenario's step
After=multi-user.target keel-test-rauc-mark-good.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/keel-test-rauc

[Install]
WantedBy=multi-user.target
`

// raucSystemConf is the system.conf of docs/rauc.md, which the scenario
// installs as it is documented.
func raucSystemConf(t testing.TB) string {
	t.Helper()
	mod, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(mod, "docs", "rauc.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## system.conf\n.*?```ini\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatal("docs/rauc.md: no ```ini block under ## system.conf")
	}
	return string(m[1])
}

// testCA makes a CA and a signing certificate under it with openssl; it
// returns the CA certificate (the keyring), the signer's certificate and key.
func testCA(t testing.TB) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	ec := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"}
	run(t, "openssl", append([]string{"req", "-x509"}, append(ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "3650",
		"-subj", "/CN=keel test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")...)...)
	run(t, "openssl", append([]string{"req"}, append(ec, "-keyout", p("signer.key"), "-out", p("signer.csr"), "-subj", "/CN=keel test signer")...)...)
	vm.WriteFile(t, dir, "ext", "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
	run(t, "openssl", "x509", "-req", "-in", p("signer.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
		"-out", p("signer.pem"), "-days", "3650", "-extfile", p("ext"))
	return p("ca.pem"), p("signer.pem"), p("signer.key")
}

// raucRoot is the Debian root with slotctl as RAUC's backend, the
// documented system.conf, keel's rauc.service drop-in, one try per
// activation, the health check, RAUC's mark-good and the step script.
func raucRoot(t testing.TB, conf, ca string) string {
	t.Helper()
	root := vm.CopyTree(t, vm.DebianRoot(t))
	mod, err := vm.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	vm.Install(t, keelTools(t).slotctl, root, "usr/bin/slotctl")
	if err := os.MkdirAll(filepath.Join(root, "usr/libexec"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/bin/slotctl", filepath.Join(root, "usr/libexec/keel-rauc-backend")); err != nil {
		t.Fatal(err)
	}
	dropin, err := os.ReadFile(filepath.Join(mod, "systemd", "rauc.service.d", "keel.conf"))
	if err != nil {
		t.Fatal(err)
	}
	vm.WriteFile(t, root, "etc/systemd/system/rauc.service.d/keel.conf", string(dropin))
	vm.WriteFile(t, root, "etc/systemd/system/rauc.service.d/tries.conf", "[Service]\nEnvironment=KEEL_RAUC_TRIES=1\n")
	vm.WriteFile(t, root, "etc/rauc/system.conf", conf)
	vm.Install(t, ca, root, "etc/rauc/keyring.pem")
	vm.Install(t, writeTemp(t, raucScript), root, "usr/local/sbin/keel-test-rauc")
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-health.service", healthUnit)
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-rauc-mark-good.service", raucMarkGoodUnit)
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-rauc.service", raucScriptUnit)
	enableUnit(t, root, "keel-test-rauc-mark-good.service", "multi-user.target.wants")
	enableUnit(t, root, "keel-test-rauc.service", "multi-user.target.wants")
	enableUnit(t, root, "keel-test-health.service", "boot-complete.target.requires")
	return root
}

func writeTemp(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// raucImage seals root as image id with the health check answering health.
func raucImage(t testing.TB, root, key, id, health string) sealed {
	t.Helper()
	vm.WriteFile(t, root, "etc/keel-test-image", id)
	vm.WriteFile(t, root, "etc/keel-test-health", health)
	return seal(t, root, key, id)
}

// raucBundle makes a signed RAUC bundle of a sealed image.
func raucBundle(t testing.TB, img sealed, compatible, version, cert, key string) string {
	t.Helper()
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	vm.Install(t, img.squashfs, content, "root.squashfs")
	vm.Install(t, img.verity, content, "verity.img")
	vm.WriteFile(t, content, "manifest.raucm", "[update]\ncompatible="+compatible+"\nversion="+version+
		"\n\n[bundle]\nformat=verity\n\n[image.rootfs]\nfilename=root.squashfs\n\n[image.verity]\nfilename=verity.img\n")
	out := filepath.Join(dir, version+".raucb")
	// The images are compressed already: store them as they are.
	run(t, "rauc", "bundle", "--cert", cert, "--key", key, "--mksquashfs-args=-noI -noD -noF -noX", content, out)
	return out
}

// raucStatus is the part of `rauc status --output-format=json` (RAUC 1.8)
// the scenario checks.
type raucStatus struct {
	Booted  string                         `json:"booted"`
	Primary string                         `json:"boot_primary"`
	Slots   []map[string]raucSlotStatusRow `json:"slots"`
}

type raucSlotStatusRow struct {
	Bootname   string `json:"bootname"`
	State      string `json:"state"`
	BootStatus string `json:"boot_status"`
}

func (s raucStatus) slot(name string) raucSlotStatusRow {
	for _, m := range s.Slots {
		if r, ok := m[name]; ok {
			return r
		}
	}
	return raucSlotStatusRow{}
}

// raucBoot is what one boot of the scenario printed.
type raucBoot struct {
	image, markGood string
	report          keelreport.Report
	status, after   raucStatus
	results         map[string]string // name -> "rc=N output"
	backendLog      string            // what the backend said on stderr (the journal)
}

func bootRauc(t *testing.T, step, initrd, disk, bundles string) raucBoot {
	t.Helper()
	start := time.Now()
	m := vm.Start(t, vm.Options{Initrd: initrd, Disks: []string{disk, bundles}, Cmdline: "keeltest=" + step, Timeout: 5 * time.Minute})
	got := m.ExpectRegexp(`KEEL-RAUC: step ` + step + ` image (\S+) mark-good (\S+)$`)
	b := raucBoot{image: got[1], markGood: got[2], results: map[string]string{}}
	js := m.ExpectRegexp(`KEEL-RAUC: report (\{.*\})$`)[1]
	if err := json.Unmarshal([]byte(js), &b.report); err != nil {
		t.Fatalf("boot %s: boot.json printed by the guest: %v\n%s", step, err, js)
	}
	b.status = parseRaucStatus(t, m.ExpectRegexp(`KEEL-RAUC: status (.*)$`)[1])
	m.Expect("KEEL-RAUC: done")
	m.Kill()
	for _, l := range strings.Split(m.Output(), "\n") {
		if i := strings.Index(l, "KEEL-RAUC: "); i >= 0 {
			l = strings.TrimSpace(l[i+len("KEEL-RAUC: "):])
			t.Logf("boot %s: %s", step, l)
			if name, rest, ok := strings.Cut(l, " rc="); ok && !strings.Contains(name, " ") {
				b.results[name] = "rc=" + rest
			}
			if s, ok := strings.CutPrefix(l, "status-after "); ok {
				b.after = parseRaucStatus(t, s)
			}
			if s, ok := strings.CutPrefix(l, "backend-log "); ok {
				b.backendLog = s
			}
		}
	}
	t.Logf("boot %s: slot %s, image %s, mark-good %s, %v (console log %s)", step, b.report.Slot, b.image, b.markGood, time.Since(start).Round(time.Second), m.LogPath())
	return b
}

func parseRaucStatus(t *testing.T, s string) raucStatus {
	t.Helper()
	var st raucStatus
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("rauc status --output-format=json in the guest: %v\n%s", err, s)
	}
	return st
}

// want checks what rauc status showed: booted bootname, primary slot and
// each slot's boot status.
func (s raucStatus) want(t *testing.T, what, booted, primary string, boot map[string]string) {
	t.Helper()
	if s.Booted != booted || s.Primary != primary {
		t.Errorf("%s: rauc status booted %q, primary %q; want %q, %q", what, s.Booted, s.Primary, booted, primary)
	}
	for name, want := range boot {
		if got := s.slot(name).BootStatus; got != want {
			t.Errorf("%s: rauc status %s boot status %q, want %q", what, name, got, want)
		}
	}
}

// failed checks that a guest command failed saying why.
func (b raucBoot) failed(t *testing.T, name, why string) {
	t.Helper()
	r, ok := b.results[name]
	if !ok || strings.HasPrefix(r, "rc=0 ") || !strings.Contains(r, why) {
		t.Errorf("%s: %q; want a failure saying %q", name, r, why)
	}
}

func (b raucBoot) succeeded(t *testing.T, name string) {
	t.Helper()
	if r := b.results[name]; !strings.HasPrefix(r, "rc=0 ") {
		t.Fatalf("%s: %q; want exit 0", name, r)
	}
}

// samePart checks that partition label of disk begins with file's bytes.
func samePart(t *testing.T, disk vm.Disk, label, file string) bool {
	t.Helper()
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(disk.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(io.NewSectionReader(f, disk.Part(t, label).Offset, int64(len(want))), got); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(got, want)
}

// TestRaucUpdatesThroughKeel: Debian's RAUC 1.8, with slotctl as its custom
// bootloader backend and the documented system.conf, installs signed
// bundles into the slot that does not run; keel's boot counting boots the
// update, RAUC's mark-good confirms it, and a bundle whose image fails its
// health check rolls back (docs/rauc.md, "Proof").
func TestRaucUpdatesThroughKeel(t *testing.T) {
	vm.Short(t)
	t.Parallel()
	needRauc(t)
	conf := raucSystemConf(t)
	compatible := regexp.MustCompile(`(?m)^compatible=(.*)$`).FindStringSubmatch(conf)[1]
	ca, cert, certKey := testCA(t)
	key := signingKey(t, "release")
	root := raucRoot(t, conf, ca)
	a := raucImage(t, root, key, "rauc-a", "ok")
	good := raucImage(t, root, key, "rauc-good", "ok")
	bad := raucImage(t, root, key, "rauc-bad", "broken")
	bundles := t.TempDir()
	vm.Install(t, raucBundle(t, good, compatible, "good", cert, certKey), bundles, "good.raucb")
	vm.Install(t, raucBundle(t, bad, compatible, "bad", cert, certKey), bundles, "bad.raucb")
	run(t, "chmod", "0644", filepath.Join(bundles, "good.raucb"), filepath.Join(bundles, "bad.raucb"))
	bundleDisk := filepath.Join(t.TempDir(), "bundles.squashfs")
	run(t, "mksquashfs", bundles, bundleDisk, "-noappend", "-noI", "-noD", "-noF", "-noX", "-quiet", "-no-progress")

	rootMiB := max(sizeMiB(t, a.squashfs), sizeMiB(t, good.squashfs), sizeMiB(t, bad.squashfs)) + 4
	verityMiB := sizeMiB(t, a.verity) + 1
	disk := vm.NewDisk(t, "", []vm.Part{
		{Name: "root-a", SizeMiB: rootMiB, Content: a.squashfs}, {Name: "verity-a", SizeMiB: verityMiB, Content: a.verity},
		{Name: "root-b", SizeMiB: rootMiB}, {Name: "verity-b", SizeMiB: verityMiB},
		{Name: "bootstate", SizeMiB: 1},
	})
	// RAUC mounts bundles through a loop device; the test root has no
	// /lib/modules of its own, so the initramfs loads loop.
	rd := initrd(t, "--trust", key+".pub", "--modules", "loop")

	// 1: a runs; RAUC refuses to touch it, then installs the good bundle into b.
	b := bootRauc(t, "1", rd, disk.Path, bundleDisk)
	if b.report.Slot != "a" || b.image != "rauc-a" || b.markGood != "active" {
		t.Fatalf("boot 1: slot %s, image %s, mark-good %s; want a, rauc-a, active", b.report.Slot, b.image, b.markGood)
	}
	b.status.want(t, "boot 1", "a", "rootfs.0", map[string]string{"rootfs.0": "good", "rootfs.1": "bad"})
	if s := b.status.slot("rootfs.0").State; s != "booted" {
		t.Errorf("boot 1: rauc status rootfs.0 state %q, want booted", s)
	}
	b.failed(t, "mark-bad-booted", "Failed marking slot rootfs.0 as bad")
	b.succeeded(t, "wrong-service")
	b.failed(t, "wrong-install", "Failed marking slot rootfs.0 non-bootable")
	b.failed(t, "no-report", "rauc.service")
	// Both refusals of the running slot and the missing report, in the
	// backend's words (RAUC logs only the exit code).
	if n := strings.Count(b.backendLog, "set-state a bad: slot a is the running slot: refusing"); n != 2 {
		t.Errorf("boot 1: the backend refused set-state a bad %d times in the journal, want 2 (mark-bad booted, the wrong install): %s", n, b.backendLog)
	}
	if !strings.Contains(b.backendLog, "get-current: cannot tell which slot is running") {
		t.Errorf("boot 1: the journal lacks the backend's refusal to name a slot without a boot report: %s", b.backendLog)
	}
	b.succeeded(t, "install")
	b.after.want(t, "boot 1 after the install", "a", "rootfs.1", map[string]string{"rootfs.0": "good", "rootfs.1": "good"})
	if !samePart(t, disk, "root-a", a.squashfs) || !samePart(t, disk, "verity-a", a.verity) {
		t.Error("boot 1: the running slot a's partitions changed")
	}
	if !samePart(t, disk, "root-b", good.squashfs) || !samePart(t, disk, "verity-b", good.verity) {
		t.Fatal("boot 1: rauc install did not write the bundle's image and verity partition into slot b")
	}
	if s := diskStatus(t, disk.Path).slot(t, "b"); s.Priority != 2 || s.Tries != 1 || s.Good {
		t.Fatalf("after boot 1: b is %+v; want on trial, priority 2, 1 try (KEEL_RAUC_TRIES=1)", s)
	}

	// 2: boot counting boots b; RAUC's mark-good confirms it; the bad bundle goes into a.
	b = bootRauc(t, "2", rd, disk.Path, bundleDisk)
	if b.report.Slot != "b" || b.image != "rauc-good" || b.markGood != "active" {
		t.Fatalf("boot 2: slot %s, image %s, mark-good %s; want b, rauc-good, active", b.report.Slot, b.image, b.markGood)
	}
	b.succeeded(t, "install")
	b.after.want(t, "boot 2 after the install", "b", "rootfs.0", map[string]string{"rootfs.0": "good", "rootfs.1": "good"})
	if s := diskStatus(t, disk.Path).slot(t, "b"); !s.Good {
		t.Errorf("after boot 2: b is %+v; want good (rauc status mark-good)", s)
	}

	// 3: the bad image boots on its one try and fails its health check.
	b = bootRauc(t, "3", rd, disk.Path, bundleDisk)
	if b.report.Slot != "a" || b.image != "rauc-bad" || b.markGood == "active" {
		t.Fatalf("boot 3: slot %s, image %s, mark-good %s; want a, rauc-bad, not active", b.report.Slot, b.image, b.markGood)
	}

	// 4: rolled back to b; RAUC shows keel's view.
	b = bootRauc(t, "4", rd, disk.Path, bundleDisk)
	if b.report.Slot != "b" || b.image != "rauc-good" || !strings.Contains(b.report.SlotReason, bootstate.ReasonTriesExhausted) {
		t.Errorf("boot 4: slot %s (%q), image %s; want b because a's tries are exhausted", b.report.Slot, b.report.SlotReason, b.image)
	}
	b.status.want(t, "boot 4", "b", "rootfs.1", map[string]string{"rootfs.0": "bad", "rootfs.1": "good"})
}

func needRauc(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"rauc", "openssl", "mksquashfs"} {
		if _, err := execCommand("sh", "-c", "command -v "+tool); err != nil {
			t.Skipf("%s not found (scripts/install-deps.sh installs rauc)", tool)
		}
	}
}
