// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bakedconf"
	kargs "github.com/keel-boot/keel/kernel-args"
)

const rootHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// testKey writes a fresh ed25519 public key for --trust.
func testKey(t *testing.T) string {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	return writeKey(t, t.TempDir(), "k.pub", pemKey(t, pub))
}

func TestCheckLocked(t *testing.T) {
	tests := []struct {
		name    string
		trust   []string
		cmdline string
		err     string
	}{
		{"key", []string{"k.pub"}, "", ""},
		{"baked root hash", nil, "root=PARTLABEL=img systemd.verity_root_hash=PARTLABEL=h roothash=" + rootHash, ""},
		{"baked devices and options", []string{"k.pub"}, "data=PARTLABEL=mydata rd.timeout=60 quiet rd.emergency=poweroff", ""},
		{"nothing to trust", nil, "", "--locked without --trust: a locked initramfs needs at least one --trust KEY.pub"},
		{"nothing to trust, options", nil, "quiet data=PARTLABEL=d", "or a root hash baked with --cmdline roothash=HEX"},
		{"baked rd.break", []string{"k.pub"}, "quiet rd.break", `--cmdline with --locked: rd.break: refused: initramfs is locked`},
		{"baked verity=off", []string{"k.pub"}, "verity=off rd.emergency=shell",
			`verity="off": refused: initramfs is locked; rd.emergency="shell": refused`},
		{"baked bad value", []string{"k.pub"}, "rd.timeout=soon", `rd.timeout="soon": expected whole seconds`},
		{"baked plain root", []string{"k.pub"}, "root=PARTLABEL=sys", "--cmdline root=PARTLABEL=sys with --locked: a plain root"},
		// A kernel name follows probe order: a card or a stick found
		// first takes it (the data partition, the boot state, the disk).
		{"baked kernel name", []string{"k.pub"}, "data=/dev/mmcblk0p6 bootstate=PARTLABEL=bs",
			`data="/dev/mmcblk0p6": refused: initramfs is locked: a kernel device name follows the order disks are found in`},
		{"baked kernel name for a slot", []string{"k.pub"}, "root-a=/dev/sda1", `root-a="/dev/sda1": refused`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLocked(tt.trust, tt.cmdline)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("checkLocked(%q, %q) = %v, want %q", tt.trust, tt.cmdline, err, tt.err)
			}
		})
	}
}

// TestLockedBuild: mkinitrd --locked fails without something to trust and
// writes no image; with a key it bakes a locked config that refuses plain
// data partitions unless --data-may-be-plain; --data-must-be-encrypted
// works unlocked too.
func TestLockedBuild(t *testing.T) {
	dir := t.TempDir()
	init := dummyInit(t)
	base := []string{"--kver", "none", "--init", init, "--no-default-modules"}
	img := filepath.Join(dir, "locked.img")
	var stdout bytes.Buffer
	err := run(append([]string{"--out", img, "--locked"}, base...), &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--locked without --trust") {
		t.Fatalf("mkinitrd --locked without --trust: %v, want an error naming --trust", err)
	}
	if _, statErr := os.Stat(img); statErr == nil || stdout.Len() != 0 {
		t.Errorf("a refused build wrote %s or a summary %q", img, stdout.String())
	}
	err = run(append([]string{"--out", img, "--locked", "--data-must-be-encrypted", "--data-may-be-plain", "--trust", testKey(t)}, base...), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "expected at most one") {
		t.Errorf("both data flags: %v", err)
	}

	key := testKey(t)
	for _, tt := range []struct {
		args          []string
		locked, plain bool
	}{
		{[]string{"--locked", "--trust", key}, true, false},
		{[]string{"--locked", "--trust", key, "--data-may-be-plain"}, true, true},
		{[]string{"--locked", "--cmdline", "root=PARTLABEL=i systemd.verity_root_hash=PARTLABEL=h roothash=" + rootHash}, true, false},
		{[]string{"--data-must-be-encrypted"}, false, false},
		{nil, false, true},
	} {
		out := mkinitrd(t, append(append([]string{"--out", img}, base...), tt.args...)...)
		c, err := bakedconf.Parse(readImage(t, img)[bakedconf.Path].Body)
		if err != nil || c.Locked != tt.locked || c.DataMustBeEncrypted == tt.plain {
			t.Errorf("mkinitrd %q: baked %+v, %v; want locked %v, plain data allowed %v", tt.args, c, err, tt.locked, tt.plain)
		}
		if want := map[bool]string{true: "plain data partition allowed", false: "plain data partition refused"}[tt.plain]; !strings.Contains(out, want) {
			t.Errorf("mkinitrd %q: summary %q lacks %q", tt.args, out, want)
		}
	}
}

// FuzzCheckLocked: a baked line checkLocked accepts gives a locked init
// something to trust, nothing it would refuse, and no plain root.
func FuzzCheckLocked(f *testing.F) {
	f.Add("", false)
	f.Add("roothash="+rootHash+" root=PARTLABEL=i systemd.verity_root_hash=PARTLABEL=h", false)
	f.Add("quiet rd.break data=/dev/sdb1", true)
	f.Add("root=/dev/sda2 rd.timeout=x", true)
	f.Fuzz(func(t *testing.T, cmdline string, withKey bool) {
		var trust []string
		if withKey {
			trust = []string{"k.pub"}
		}
		if checkLocked(trust, cmdline) != nil {
			return
		}
		base, problems := kargs.FromBaked(cmdline, true)
		if len(problems) > 0 || base.PlainRoot() || (!withKey && base.RootHash == "") {
			t.Fatalf("checkLocked accepted %q (key %v): problems %v, config %+v", cmdline, withKey, problems, base)
		}
	})
}
