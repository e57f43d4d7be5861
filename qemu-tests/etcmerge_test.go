// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"encoding/json"
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

// aliceHash is `openssl passwd -6 -salt keeltest secret`: alice's password.
const aliceHash = "$6$keeltest$sycbnY0LQ4jeDmhva/k7NwJ5OjXFgx2ZUZOZ5vuSdAa/AMICc0WWAtL..lvECy68cQKCCwA96.sJV6BS8Y.rY0"

// etcChangeScript is what an operator does on the first boot of image a:
// change a file, add one, delete one, add a user with a password, give the
// machine a new identity. It runs once (the marker is on @var).
const etcChangeScript = `#!/bin/sh
set -e
echo "local motd" >/etc/motd
echo "local v2" >/etc/keel-test/local.conf
echo "added" >/etc/keel-test/added.conf
rm /etc/keel-test/deleted.conf
useradd -m -u 1500 -s /bin/sh -p '` + aliceHash + `' alice
tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
# Changes that are only an extended attribute (as setfacl or chcon make):
# setxattr(2) is system call 188 on x86_64; perl-base is in every root.
# (perl's syscall wants its string arguments in variables).
perl -e 'for (["attr.conf", "mine"], ["label.conf", "label"]) {
	my ($p, $k, $v) = ("/etc/keel-test/$_->[0]", "user.keel", $_->[1]);
	syscall(188, $p, $k, $v, length($v), 0) == 0 or die "setxattr $p: $!\n" }'
touch /var/lib/keel-test-etc-changed
sync
echo "KEEL-ETC: changed" >/dev/console
`

// etcCheckScript prints the /etc the system sees, one KEEL-ETC: line each.
const etcCheckScript = `#!/bin/sh
say() { echo "KEEL-ETC: $*" >/dev/console; }
for f in /etc/motd /etc/motd.keel-new /etc/keel-test/local.conf /etc/keel-test/added.conf \
	/etc/keel-test/deleted.conf /etc/keel-test/upstream.conf /etc/keel-test/attr.conf /etc/machine-id; do
	if [ -e "$f" ]; then say "$f=$(tr '\n' '|' <"$f")"; else say "$f=<missing>"; fi
done
# getxattr(2) is system call 191 on x86_64.
perl -e 'for my $f (@ARGV) { my ($p, $k, $v) = ($f, "user.keel", "\0" x 64); my $n = syscall(191, $p, $k, $v, 64);
	print "KEEL-ETC: xattr $f=", ($n < 0 ? "<none>" : substr($v, 0, $n)), "\n" }' \
	/etc/keel-test/attr.conf /etc/keel-test/label.conf >/dev/console
say "passwd alice=$(grep '^alice:' /etc/passwd)"
say "shadow alice=$(grep '^alice:' /etc/shadow)"
say "passwd _keeltest=$(grep '^_keeltest:' /etc/passwd)"
say "shadow _keeltest=$(grep '^_keeltest:' /etc/shadow)"
say "boot.json=$(tr -d '\n' </run/keel/boot.json)"
say "base mounts=$(grep -c ' /run/keel/base ' /proc/mounts)"
/usr/bin/slotctl etc-diff 2>&1 | sed "s/^/KEEL-ETC: etc-diff: /" >/dev/console
say "check done"
`

const etcChangeUnit = `[Unit]
Description=keel test: change /etc once
ConditionPathExists=!/var/lib/keel-test-etc-changed
Before=keel-mark-good.service keel-test-etc-check.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/keel-etc-change

[Install]
WantedBy=multi-user.target
`

const etcCheckUnit = `[Unit]
Description=keel test: print /etc
After=multi-user.target keel-mark-good.service keel-test-etc-change.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/keel-etc-check

[Install]
WantedBy=multi-user.target
`

// etcBoot is what one boot of the /etc scenario showed.
type etcBoot struct {
	etc     map[string]string // KEEL-ETC: NAME=VALUE lines
	report  keelreport.Report
	console string
}

var etcLine = regexp.MustCompile(`KEEL-ETC: ([^=\r\n]+)=([^\r\n]*)`)

// bootEtc boots the disk until the check script is done, then cuts the
// power (the boot state and the upper must survive that).
func bootEtc(t *testing.T, rd, disk string) etcBoot {
	t.Helper()
	m := vm.Start(t, vm.Options{Initrd: rd, Disks: []string{disk}, Timeout: 5 * time.Minute})
	m.Expect("KEEL-ETC: check done")
	m.Kill()
	b := etcBoot{etc: map[string]string{}, console: m.Output()}
	for _, l := range etcLine.FindAllStringSubmatch(b.console, -1) {
		if _, seen := b.etc[l[1]]; !seen {
			b.etc[l[1]] = l[2]
		}
	}
	if err := json.Unmarshal([]byte(b.etc["boot.json"]), &b.report); err != nil {
		t.Fatalf("boot.json printed by the guest: %v\n%s (console log %s)", err, b.etc["boot.json"], m.LogPath())
	}
	for _, l := range strings.Split(b.console, "\n") {
		if i := strings.Index(l, "KEEL-ETC: etc-diff: "); i >= 0 {
			t.Log("etc-diff: " + strings.TrimSpace(l[i+20:]))
		}
	}
	t.Logf("slot %s (image %s) booted; console log %s", b.report.Slot, b.report.ImageID, m.LogPath())
	return b
}

// want checks the /etc lines of a boot.
func (b etcBoot) want(t *testing.T, when string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got, ok := b.etc[k]; !ok || got != v {
			t.Errorf("%s: %s = %q, want %q", when, k, got, v)
		}
	}
}

// TestEtcMergeSystemd: /etc survives an update. Image a boots with a data
// partition; the operator changes /etc (a file, a new file, a deleted file,
// a user with a password, a new machine-id) and a is marked good. Image b,
// installed with slotctl install, changes another /etc file and one of the
// locally changed ones and adds a system user; its first boot (on trial,
// through boot counting) merges: every rule holds, the conflict is
// reported, alice can still log in, the machine keeps its identity. A
// rollback to a finds a's /etc as it was.
func TestEtcMergeSystemd(t *testing.T) { testEtcMergeSystemd(t, "ext4") }

// TestEtcMergeSystemdBtrfs is TestEtcMergeSystemd on a btrfs data
// partition, the default: the first boot makes its upper a subvolume, and
// the update's merge starts from a snapshot of it, edited in place.
func TestEtcMergeSystemdBtrfs(t *testing.T) { testEtcMergeSystemd(t, "btrfs") }

func testEtcMergeSystemd(t *testing.T, fstype string) {
	vm.Short(t)
	t.Parallel()
	key := signingKey(t, "release")
	root := rollbackRoot(t)
	vm.WriteFile(t, root, "etc/keel-test-health", "ok")
	vm.WriteFile(t, root, "usr/local/bin/keel-etc-change", etcChangeScript)
	vm.WriteFile(t, root, "usr/local/bin/keel-etc-check", etcCheckScript)
	run(t, "chmod", "0755", filepath.Join(root, "usr/local/bin/keel-etc-change"), filepath.Join(root, "usr/local/bin/keel-etc-check"))
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-etc-change.service", etcChangeUnit)
	vm.WriteFile(t, root, "etc/systemd/system/keel-test-etc-check.service", etcCheckUnit)
	enableUnit(t, root, "keel-test-etc-change.service", "multi-user.target.wants")
	enableUnit(t, root, "keel-test-etc-check.service", "multi-user.target.wants")
	vm.WriteFile(t, root, "etc/motd", "image motd v1\n")
	vm.WriteFile(t, root, "etc/keel-test/local.conf", "local v1\n")
	vm.WriteFile(t, root, "etc/keel-test/deleted.conf", "delete me\n")
	vm.WriteFile(t, root, "etc/keel-test/upstream.conf", "upstream v1\n")
	vm.WriteFile(t, root, "etc/keel-test/attr.conf", "attr v1\n")
	vm.WriteFile(t, root, "etc/keel-test/label.conf", "label\n")
	a := seal(t, root, key, "debian-etc-a")

	vm.WriteFile(t, root, "etc/motd", "image motd v2\n")
	vm.WriteFile(t, root, "etc/keel-test/upstream.conf", "upstream v2\n")
	vm.WriteFile(t, root, "etc/keel-test/attr.conf", "attr v2\n")
	for f, line := range map[string]string{
		"passwd": "_keeltest:x:990:990::/nonexistent:/usr/sbin/nologin", "group": "_keeltest:x:990:",
		"shadow": "_keeltest:!:20000::::::", "gshadow": "_keeltest:!::",
	} {
		appendLine(t, filepath.Join(root, "etc", f), line)
	}
	b := seal(t, root, key, "debian-etc-b")

	data := mkfs(t, "mkfs.ext4", 160, "-q", "-F")
	if fstype == "btrfs" {
		data = mkfs(t, "mkfs.btrfs", 160, "-q", "-f")
	}
	abd := abDisk(t, &a, &a, vm.Part{Name: "data", SizeMiB: 161, Content: data})
	disk := abd.Path
	rd := initrd(t, "--trust", key+".pub")

	first := bootEtc(t, rd, disk)
	if first.report.Slot != "a" || first.report.Overlay != "persistent" || first.report.EtcMerge != nil {
		t.Fatalf("first boot: slot %s, overlay %s, etc_merge %+v: want a, persistent, no merge", first.report.Slot, first.report.Overlay, first.report.EtcMerge)
	}
	if !strings.Contains(first.console, "KEEL-ETC: changed") {
		t.Fatal("first boot: the /etc changes were not made")
	}
	machineID := first.etc["/etc/machine-id"]
	first.want(t, "first boot", map[string]string{"/etc/motd": "local motd|", "/etc/keel-test/deleted.conf": "<missing>",
		"xattr /etc/keel-test/attr.conf": "mine", "xattr /etc/keel-test/label.conf": "label"})
	if !diskStatus(t, disk).slot(t, "a").Good {
		t.Fatal("after the first boot a is not good: keel-mark-good.service did not run")
	}
	if fstype == "ext4" {
		wantDataCopy(t, abd)
	}

	slotctlDisk(t, disk, "install", "--slot", "b", b.squashfs, b.verity, "--trust", key+".pub")
	up := bootEtc(t, rd, disk)
	if up.report.Slot != "b" || up.report.TriesLeft == nil {
		t.Fatalf("update boot: slot %s, tries left %v: want b on trial", up.report.Slot, up.report.TriesLeft)
	}
	up.want(t, "update boot", map[string]string{
		"/etc/motd":                    "local motd|",
		"/etc/motd.keel-new":           "image motd v2|",
		"/etc/keel-test/local.conf":    "local v2|",
		"/etc/keel-test/added.conf":    "added|",
		"/etc/keel-test/deleted.conf":  "<missing>",
		"/etc/keel-test/upstream.conf": "upstream v2|",
		// Changed only by an attribute: carried, over the update's content.
		"/etc/keel-test/attr.conf":        "attr v2|",
		"xattr /etc/keel-test/attr.conf":  "mine",
		"xattr /etc/keel-test/label.conf": "label",
		"/etc/machine-id":                 machineID,
		"passwd _keeltest":                "_keeltest:x:990:990::/nonexistent:/usr/sbin/nologin",
		"shadow _keeltest":                "_keeltest:!:20000::::::",
		"base mounts":                     "0", // undone in the background, before switch_root
	})
	if !strings.HasPrefix(up.etc["passwd alice"], "alice:x:1500:") || !strings.HasPrefix(up.etc["shadow alice"], "alice:"+aliceHash+":") {
		t.Errorf("update boot: alice is %q / %q: want uid 1500 and her password", up.etc["passwd alice"], up.etc["shadow alice"])
	}
	m := up.report.EtcMerge
	if m == nil {
		t.Fatal("update boot: no etc_merge in boot.json")
	}
	js, _ := json.Marshal(m)
	t.Logf("boot.json etc_merge: %s", js)
	if m.FromSlot != "a" || m.FromImage != "debian-etc-a" || m.Base != "slot a" || m.Error != "" || m.Carried == 0 || m.Deleted != 1 {
		t.Errorf("etc_merge %+v: want from a/debian-etc-a against slot a, things carried, one deletion", m)
	}
	if m.InPlace != (fstype == "btrfs") {
		t.Errorf("etc_merge in_place %v on %s: want in place exactly on btrfs (a snapshot of the old upper)", m.InPlace, fstype)
	}
	if !hasConflict(m, "/etc/motd") || strings.Contains(string(js), `"path":"/etc/keel-test/upstream.conf"`) {
		t.Errorf("etc_merge conflicts %+v: want /etc/motd, and not upstream.conf", m.Conflicts)
	}
	if !regexp.MustCompile(`keel: /etc merge conflict: /etc/motd: `).MatchString(up.console) ||
		!regexp.MustCompile(`keel: /etc merged from slot a \(image debian-etc-a\) against slot a: \d+ carried`).MatchString(up.console) {
		t.Error("update boot: the console lacks the merge summary or the /etc/motd conflict line")
	}

	slotctlDisk(t, disk, "set-next", "a")
	back := bootEtc(t, rd, disk)
	if back.report.Slot != "a" || back.report.EtcMerge != nil {
		t.Fatalf("rollback boot: slot %s, etc_merge %+v: want a, no merge (its upper is found again)", back.report.Slot, back.report.EtcMerge)
	}
	back.want(t, "rollback boot", map[string]string{
		"/etc/motd":                      "local motd|",
		"/etc/motd.keel-new":             "<missing>",
		"/etc/keel-test/local.conf":      "local v2|",
		"/etc/keel-test/added.conf":      "added|",
		"/etc/keel-test/deleted.conf":    "<missing>",
		"/etc/keel-test/upstream.conf":   "upstream v1|",
		"/etc/keel-test/attr.conf":       "attr v1|",
		"xattr /etc/keel-test/attr.conf": "mine",
		"/etc/machine-id":                machineID,
		"passwd _keeltest":               "",
	})
	if !strings.HasPrefix(back.etc["shadow alice"], "alice:"+aliceHash+":") {
		t.Errorf("rollback boot: shadow alice = %q", back.etc["shadow alice"])
	}
}

func hasConflict(m *keelreport.EtcMerge, path string) bool {
	for _, c := range m.Conflicts {
		if c.Path == path {
			return true
		}
	}
	return false
}

func appendLine(t testing.TB, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// wantDataCopy checks that the data partition (ext4) of disk holds the copy of the boot state that slotctl keeps, equal to the
// bootstate partition's newest record: keel-mark-good.service, the real
// slotctl in the guest, wrote both.
func wantDataCopy(t *testing.T, disk vm.Disk) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "copy")
	data := extractPart(t, disk, "data")
	// debugfs reads no journal: replay it first (the copy was written in
	// the last minute of a running system, maybe not yet checkpointed).
	if msg, err := runErr("e2fsck", "-E", "journal_only", "-y", data); err != nil && !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("e2fsck -E journal_only: %v\n%s", err, msg)
	}
	run(t, "debugfs", "-R", "dump /"+bootstate.CopyName+" "+out, data)
	f, err := os.Open(out)
	if err != nil {
		t.Fatalf("no boot state copy on the data partition: %v", err)
	}
	defer f.Close()
	got, err := bootstate.ReadCopy(f)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Open(extractPart(t, disk, "bootstate"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	want, _, err := bootstate.Load(st)
	if err != nil || got != want {
		t.Errorf("the data partition's copy of the boot state: %+v\nthe bootstate partition: %+v (%v)", got, want, err)
	}
}
