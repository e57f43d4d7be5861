// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keel-boot/keel/bakedconf"
)

func TestFileBuiltins(t *testing.T) {
	s, out, errb := testShell(t)
	steps := []struct{ line, want string }{
		{"mkdir -p a/b/c && echo hello > a/b/c/f && cat a/b/c/f", "hello\n"},
		{"cp a/b/c/f g && cat g", "hello\n"},
		{"mkdir dir && cp g a/b/c/f dir && ls dir", "f\ng\n"},
		{"mv g h && ls", "a\ndir\nh\n"},
		{"ln -s h link && ls -l link", "Lrwxrwxrwx          1 link -> h\n"},
		{"ln h hard && cat hard", "hello\n"},
		{"echo .hidden > .x && ls && ls -a | grep -c .x", "a\ndir\nh\nhard\nlink\n1\n"},
		{"rm -r a dir && rm h hard link .x && ls", ""},
		{"rm -f never-there && echo ok", "ok\n"},
		{"echo one > m; echo two >> m; echo three >> m; head -n 2 m", "one\ntwo\n"},
		{"grep -n t m", "2:two\n3:three\n"},
		{"grep -v t m", "one\n"},
		{"grep -i TWO m", "two\n"},
		{"grep -c e m", "2\n"},
		{"echo 0123456789abcdefXYZ > hx; hexdump -C hx", "00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n00000010  58 59 5a 0a                                       |XYZ.|\n00000014\n"},
		{"hexdump -s 16 -n 2 hx", "00000010  58 59                                             |XY|\n00000012\n"},
		{"dd if=hx of=dd.out bs=4 skip=1 count=2 2>/dev/null; cat dd.out; echo", "456789ab\n"},
		{"dd if=hx of=dd.out bs=1 seek=2 count=1 2>/dev/null; cat dd.out; echo", "450789ab\n"},
	}
	for _, st := range steps {
		out.Reset()
		errb.Reset()
		if rc := s.Run(st.line); out.String() != st.want {
			t.Fatalf("%q: status %d output %q, want %q (stderr %q)", st.line, rc, out.String(), st.want, errb.String())
		}
	}
}

// TestSkipUnseekable: hexdump -s and dd skip= read past the bytes of a file
// that cannot seek (a FIFO here; an efivarfs variable, whose 4 bytes of
// attributes come first, in the rescue shell), where they failed with
// "illegal seek".
func TestSkipUnseekable(t *testing.T) {
	s, out, errb := testShell(t)
	for _, tc := range []struct{ line, want string }{
		{"hexdump -s 16 -n 3 fifo", "00000010  58 59 5a                                          |XYZ|\n00000013\n"},
		{"dd if=fifo bs=4 skip=4 count=1 2>/dev/null", "XYZ"},
	} {
		if err := syscall.Mkfifo("fifo", 0o600); err != nil {
			t.Fatal(err)
		}
		go func() {
			if err := os.WriteFile("fifo", []byte("0123456789abcdefXYZ"), 0o600); err != nil {
				t.Error(err)
			}
		}()
		out.Reset()
		errb.Reset()
		if rc := s.Run(tc.line); rc != 0 || out.String() != tc.want {
			t.Errorf("%q: status %d output %q, want %q (stderr %q)", tc.line, rc, out.String(), tc.want, errb.String())
		}
		if err := os.Remove("fifo"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHexdumpCollapsesRepeats(t *testing.T) {
	s, out, _ := testShell(t)
	if err := os.WriteFile("zeros", make([]byte, 64), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Run("hexdump zeros")
	want := "00000000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n*\n00000040\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestBuiltinErrors(t *testing.T) {
	for line, want := range map[string]string{
		"cat nope":             "cat: open nope: no such file or directory",
		"ls -z":                "ls: unknown option -z (options: -l -a)",
		"mkdir":                "mkdir: expected DIR",
		"rm /":                 "rm: refusing to remove /",
		"cp onlyone":           "cp: expected SRC… DST",
		"grep":                 "grep: expected TEXT [FILE…]",
		"head -n x":            `head: -n "x": expected a number of lines`,
		"dd bs=0":              "dd: bs: bs must not be 0",
		"dd foo":               `dd: "foo": expected KEY=VALUE`,
		"dd if=x bogus=1":      "dd: unknown operand bogus",
		"hexdump -s 1z":        `hexdump: -s: "1z" is not a size`,
		"sleep abc":            `sleep: "abc" is not a number of seconds`,
		"kill 1":               `kill: "1" is not a PID other than 1`,
		"kill -NOPE 5":         "kill: unknown signal -NOPE",
		"exit 300":             `exit: "300" is not an exit status`,
		"export 1x=2":          `export: "1x" is not a variable name`,
		"cd /no/such/dir":      "cd: chdir /no/such/dir: no such file or directory",
		"mount -x a b":         "mount: unknown option -x",
		"mount onlyone":        "mount: expected SOURCE DIR",
		"mount /dev/null /mnt": "mount: /dev/null: no known filesystem",
		"umount":               "umount: expected DIR",
		"modprobe":             "modprobe: expected MODULE…",
		"chroot":               "chroot: expected DIR",
	} {
		s, _, errb := testShell(t)
		if st := s.Run(line); st == 0 || !strings.Contains(errb.String(), want) {
			t.Errorf("%q: status %d stderr %q, want %q", line, st, errb.String(), want)
		}
	}
}

func TestHelpListsEveryBuiltin(t *testing.T) {
	s, out, _ := testShell(t)
	s.Run("help")
	for name, b := range s.builtins {
		if !strings.HasPrefix(b.usage, name) || !strings.Contains(out.String(), "  "+b.usage+"\n") {
			t.Errorf("help lacks %s (usage %q)", name, b.usage)
		}
	}
}

// TestModprobeUsesTheBakedPlan loads through a fake root: the plan comes
// from its baked configuration and loaded modules from its /proc/modules;
// a module outside the plan is named.
func TestModprobeUsesTheBakedPlan(t *testing.T) {
	s, out, errb := testShell(t)
	root := t.TempDir()
	s.Root = root
	cfg := &bakedconf.Config{Modules: []bakedconf.Module{{Name: "crc16", Path: "/lib/modules/crc16.ko"}, {Name: "jbd2", Path: "/lib/modules/jbd2.ko"},
		{Name: "ext4", Path: "/lib/modules/ext4.ko", Deps: []string{"crc16", "jbd2"}}}}
	b, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for p, body := range map[string][]byte{bakedconf.Path: b, "/proc/modules": []byte("crc16 16384 1 ext4, Live 0x0\njbd2 180224 0 - Loading 0x0\n")} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// crc16 is live, so it is not tried; jbd2 is still loading (by the
	// init), so it is loaded again, which waits for it in the kernel: its
	// file is missing here, and ext4 fails with it.
	if st := s.Run("modprobe ext4 nosuchmod"); st == 0 {
		t.Fatal("modprobe succeeded without module files")
	}
	for _, want := range []string{"nosuchmod: not in this initramfs", "module jbd2 (/lib/modules/jbd2.ko)", "module ext4: dependency not loaded: jbd2 failed"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr %q lacks %q", errb.String(), want)
		}
	}
	if strings.Contains(errb.String(), "crc16") {
		t.Errorf("modprobe tried the loaded crc16: %q", errb.String())
	}
	errb.Reset()
	out.Reset()
	if st := s.Run("lsmod | grep Loading"); st != 0 || !strings.HasPrefix(out.String(), "jbd2 ") {
		t.Errorf("lsmod: status %d output %q stderr %q", st, out.String(), errb.String())
	}
}

func TestLsblkReadsSysfs(t *testing.T) {
	s, out, errb := testShell(t)
	root := t.TempDir()
	s.Root = root
	write := func(p, body string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("/sys/class/block/vda/size", "131072\n")
	write("/sys/class/block/vda/uevent", "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n")
	write("/sys/class/block/vda1/size", "2048\n")
	write("/sys/class/block/vda1/partition", "1\n")
	write("/sys/class/block/vda1/uevent", "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=root-a\n")
	write("/sys/class/block/dm-0/size", "100\n")
	write("/sys/class/block/dm-0/uevent", "MAJOR=253\nMINOR=0\nDEVNAME=dm-0\nDEVTYPE=disk\n")
	write("/sys/class/block/dm-0/dm/name", "keel-root-a\n")
	// An ext4 superblock: magic at 1080, label at 1144.
	sb := make([]byte, 4096)
	sb[1080], sb[1081] = 0x53, 0xef
	copy(sb[1144:], "rootfs")
	write("/dev/vda1", string(sb))
	// A stick's strings are shown escaped: they go raw to a root shell's
	// terminal, which takes escape sequences from them.
	write("/sys/class/block/vda2/size", "2048\n")
	write("/sys/class/block/vda2/partition", "2\n")
	write("/sys/class/block/vda2/uevent", "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=p\x1b]0;x\x07\n")
	copy(sb[1144:], "\x1b[2J\x1b[H ok\x00\x00")
	write("/dev/vda2", string(sb))
	if st := s.Run("lsblk"); st != 0 {
		t.Fatalf("status %d stderr %q", st, errb.String())
	}
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Errorf("a disk's string reached the terminal raw:\n%q", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines:\n%s", len(lines), out.String())
	}
	for i, want := range [][]string{
		{"NAME", "TYPE", "SIZE", "FSTYPE", "LABEL", "UUID", "PARTLABEL"},
		{"dm-0", "(keel-root-a)", "dm", "50.0K"},
		{"vda", "disk", "64.0M"},
		{"vda1", "part", "1.0M", "ext2", "rootfs", "root-a"},
		{"vda2", "part", `"\x1b[2J\x1b[H ok"`, `"p\x1b]0;x\a"`},
	} {
		f := strings.Fields(lines[i+0])
		for _, w := range want {
			if !strings.Contains(strings.Join(f, " "), w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
}

// TestParseSize: dd's and hexdump's sizes; a bad one is named as typed.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "4k": 4096, "4K": 4096, "1M": 1 << 20, "2G": 2 << 30, "0x1000": 4096} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "xM", "-1", "1T", "9999999999G"} {
		if _, err := parseSize(in); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q is not a size", in)) {
			t.Errorf("parseSize(%q): %v, want it refused, named as typed", in, err)
		}
	}
}

// FuzzParseSize: no text overflows a size or makes it negative.
func FuzzParseSize(f *testing.F) {
	f.Add("4k")
	f.Add("0x3fffffffffffffffG")
	f.Fuzz(func(t *testing.T, in string) {
		if n, err := parseSize(in); err == nil && (n < 0 || n > 1<<62) {
			t.Fatalf("parseSize(%q) = %d", in, n)
		}
	})
}
