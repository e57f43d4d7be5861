// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-boot/keel/bakedconf"
	"github.com/keel-boot/keel/devspec"
	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
)

func TestConsoleHides(t *testing.T) {
	for _, tt := range []struct {
		printk string
		prio   int
		want   bool
	}{
		{"7\t4\t1\t7\n", prioWarn, false}, // default: warnings printed
		{"4\t4\t1\t7\n", prioWarn, true},  // quiet
		{"4\t4\t1\t7\n", prioErr, false},
		{"1 4 1 7", prioErr, true},
		{"", prioWarn, true},
		{"x 4 1 7", prioWarn, true},
	} {
		if got := consoleHides(tt.printk, tt.prio); got != tt.want {
			t.Errorf("consoleHides(%q, %d) = %v, want %v", tt.printk, tt.prio, got, tt.want)
		}
	}
}

func FuzzConsoleHides(f *testing.F) {
	f.Add("4\t4\t1\t7\n", prioWarn)
	f.Add("15 4 1 7", 0)
	f.Fuzz(func(t *testing.T, printk string, prio int) {
		got := consoleHides(printk, prio)
		fields := strings.Fields(printk)
		if len(fields) == 0 {
			if !got {
				t.Fatalf("consoleHides(%q) = false: empty contents must count as hidden", printk)
			}
			return
		}
		if level, err := strconv.Atoi(fields[0]); err == nil && got != (prio >= level) {
			t.Fatalf("consoleHides(%q, %d) = %v, want prio >= %d", printk, prio, got, level)
		}
	})
}

func TestDataEncryption(t *testing.T) {
	for _, tt := range []struct {
		must, encrypted bool
		fsType, err     string
	}{
		{false, false, "ext4", ""},
		{false, true, "crypto_LUKS", ""},
		{true, true, "crypto_LUKS", ""},
		{true, false, "ext4", "found plain ext4, expected LUKS2"},
		{true, false, "btrfs", "found plain btrfs, expected LUKS2: this initramfs uses only an encrypted data partition (mkinitrd --data-must-be-encrypted"},
	} {
		err := dataEncryption(tt.must, tt.fsType, tt.encrypted)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("dataEncryption(%v, %q, %v) = %v, want %q", tt.must, tt.fsType, tt.encrypted, err, tt.err)
		}
	}
}

// TestCommandLineProblems: refused options go to the report's refused list
// (not its warnings), bad values to its warnings; both are logged.
func TestCommandLineProblems(t *testing.T) {
	var console bytes.Buffer
	b := &boot{log: newLogger(&console), rep: &report.Report{}, baked: &bakedconf.Config{Locked: true}}
	_, problems := kargs.Parse("data=/dev/sdb1 rd.break slot=c", kargs.Defaults(), true)
	b.commandLineProblems(problems)
	want := []report.Refused{
		{Option: "data=/dev/sdb1", Reason: "refused: initramfs is locked, and the baked default is PARTLABEL=data"},
		{Option: "rd.break", Reason: "refused: initramfs is locked"},
	}
	if len(b.rep.Refused) != 2 || b.rep.Refused[0] != want[0] || b.rep.Refused[1] != want[1] {
		t.Errorf("refused %+v, want %+v", b.rep.Refused, want)
	}
	if len(b.rep.Warnings) != 1 || !strings.Contains(b.rep.Warnings[0], `slot="c"`) {
		t.Errorf("warnings %q, want only slot=c", b.rep.Warnings)
	}
	for _, s := range []string{`keel: command line: data="/dev/sdb1": refused`, `keel: command line: slot="c"`} {
		if !strings.Contains(console.String(), s) {
			t.Errorf("console lacks %q:\n%s", s, console.String())
		}
	}
}

// TestCheckAuthenticated: an unauthenticated root is a report warning when
// unlocked and an error when locked; an authenticated one is neither.
func TestCheckAuthenticated(t *testing.T) {
	for _, locked := range []bool{false, true} {
		var console bytes.Buffer
		b := &boot{log: newLogger(&console), rep: &report.Report{}, baked: &bakedconf.Config{Locked: locked}}
		if err := b.checkAuthenticated(&image{authed: true, hashDev: "/dev/vda2"}); err != nil || len(b.rep.Warnings) != 0 {
			t.Fatalf("authenticated root (locked %v): %v, warnings %q", locked, err, b.rep.Warnings)
		}
		err := b.checkAuthenticated(&image{hashDev: "/dev/vda2"})
		switch {
		case locked && (err == nil || !strings.Contains(err.Error(), "/dev/vda2: root hash not authenticated: the initramfs is locked")):
			t.Errorf("locked: %v, want an error", err)
		case !locked && (err != nil || len(b.rep.Warnings) != 1 || !strings.Contains(b.rep.Warnings[0], "root NOT AUTHENTICATED")):
			t.Errorf("unlocked: %v, warnings %q; want one warning", err, b.rep.Warnings)
		case !locked && !strings.Contains(console.String(), "root NOT AUTHENTICATED"):
			t.Errorf("console:\n%s\nwant the warning", console.String())
		}
	}
}

// TestLockedKernelOptions: a locked init refuses kernel options that hide
// devices, by name; others pass.
func TestLockedKernelOptions(t *testing.T) {
	const baked = "systemd.unit=kiosk.target quiet"
	for _, c := range []struct {
		cmdline string
		refused string
	}{
		{"console=ttyS0 quiet", ""},
		{"module_blacklist=nvme,ahci root=x", "module_blacklist=nvme,ahci: refused: the initramfs is locked and this kernel option hides devices"},
		{`initcall_blacklist="virtio_blk_init"`, "initcall_blacklist"},
		{"modprobe.blacklist=ahci", "modprobe.blacklist=ahci"},
		{"libata.force=1:disable", "libata.force=1:disable: refused"},
		{"scsi_mod.scan=none", "scsi_mod.scan=none: refused"},
		{"module_blacklisted=x", ""},
		{"noefi", "noefi: refused: the initramfs is locked and this kernel option hides devices"},
		{"efi=debug,noruntime", "efi=debug,noruntime: refused: the initramfs is locked and this kernel option hides devices"},
		{"efi=debug", ""},
		// Drivers built in on some kernels that claim the system disk's
		// controller first, or keep a USB disk from appearing (found by
		// a hunting helper); "-" and "_" are one to the kernel.
		{"pci-stub.ids=144d:a808", "pci-stub.ids=144d:a808: refused: the initramfs is locked"},
		{"vfio-pci.ids=144d:a808", "vfio-pci.ids=144d:a808: refused"},
		{"vfio_pci.ids=8086:2922", "vfio_pci.ids=8086:2922: refused"},
		{"usb-storage.quirks=0781:5581:i", "usb-storage.quirks=0781:5581:i: refused"},
		{"usbcore.authorized_default=0", "usbcore.authorized_default=0: refused"},
		{"nousb", "nousb: refused"},
		{"vfio-pci.disable_vga=1", ""},
		// The kernel's isspace is Latin-1's: it splits at 0xA0, alone or
		// as the second byte of UTF-8's no-break space, and applies
		// what follows.
		{"quiet x\xa0module_blacklist=virtio_blk,nvme,ahci", "module_blacklist=virtio_blk,nvme,ahci: refused"},
		{"quiet \u00a0initcall_blacklist=virtio_blk_init", "initcall_blacklist=virtio_blk_init: refused"},
		{"quiet x\xa0libata.force=1:disable", "libata.force=1:disable: refused"},
		// A UTF-8 "à" (C3 A0) splits for the kernel too, harmlessly.
		{"quiet keel.note=voil\u00e0 systemd.log_level=info", ""},
		// systemd options that run something: refused by name.
		{`"systemd.run=/bin/sh -c id" systemd.run_success_action=none`, `"systemd.run=/bin/sh -c id": refused: the initramfs is locked and this systemd option can change what the booted system runs`},
		{"quiet systemd.debug_shell", "systemd.debug_shell: refused"},
		{"systemd.debug-shell=1", "systemd.debug-shell=1: refused"},
		{"systemd.unit=emergency.target", "systemd.unit=emergency.target: refused"},
		{"systemd.wants=debug-shell.service", "systemd.wants=debug-shell.service: refused"},
		{"systemd.mount-extra=/dev/sdb1:/etc", "systemd.mount-extra=/dev/sdb1:/etc: refused"},
		{"systemd.set_credential=passwd.plaintext-password.root:x", "systemd.set_credential=passwd.plaintext-password.root:x: refused"},
		{"systemd.unit=rescue.target systemd.unit=kiosk.target", "systemd.unit=rescue.target: refused"},
		{"emergency", "emergency: refused: the initramfs is locked and this word boots systemd into a rescue or emergency shell"},
		{"console=ttyS0 single", "single: refused"},
		{"S", "S: refused"},
		{"1", "1: refused"},
		{"-b", "-b: refused"},
		{"rescue", "rescue: refused"},
		{"s", "s: refused"},
		{"-s", "-s: refused"},
		{"usbcore.nousb", "usbcore.nousb: refused"},
		// Not only the options named above: every systemd option but
		// those that log, show or keel reads is refused (an allow-list).
		{"systemd.crash_shell=1", "systemd.crash_shell=1: refused"},
		{"systemd.setenv=LD_PRELOAD=/x", "systemd.setenv=LD_PRELOAD=/x: refused"},
		{"systemd.default_standard_output=tty", "systemd.default_standard_output=tty: refused"},
		{"systemd.firstboot=0", "systemd.firstboot=0: refused"},
		// systemd unquotes with single quotes and backslashes too.
		{`'systemd.run=/bin/sh -c id'`, `'systemd.run=/bin/sh: refused`},
		{`sys'temd.debug_shell'`, `sys'temd.debug_shell': refused`},
		{`\systemd.debug_shell`, `refused`},
		{`'emergency'`, `'emergency': refused`},
		// Words the kernel's split hides inside double quotes but
		// systemd's does not: a single-quoted double quote, and (systemd
		// before 245) a backslash before one.
		{`'"' systemd.debug_shell`, "command line: systemd.debug_shell: refused"},
		{`console=ttyS0 quiet '"' systemd.run=/bin/sh '"'`, "command line: systemd.run=/bin/sh: refused"},
		{`'"' S`, "command line: S: refused"},
		{`'"' emergency '"'`, "command line: emergency: refused"},
		{`\'\"\' systemd.run=/bin/sh \'\"\'`, "command line: systemd.run=/bin/sh: refused"},
		{`\"x systemd.debug_shell "`, "command line: systemd.debug_shell: refused"},
		// Named quoted and cut: the word reached the console raw, escape
		// sequences and kilobytes with it (found by a hunting helper).
		{"systemd.run=\x1b[2J" + strings.Repeat("x", 3000), `command line: "systemd.run=\x1b[2Jxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…": refused`},
		// What systemd logs and shows, keel's own options, the builder's
		// baked words, a runlevel word as a value: let through.
		{"systemd.log_level=debug systemd.show_status=0 systemd.journald.forward_to_console=1 systemd.log-target=console", ""},
		{"systemd.volatile=overlay systemd.verity=1", ""},
		{"systemd.unit=kiosk.target", ""},
		{"rescue=1 emergency.x S=1", ""},
	} {
		err := lockedKernelOptions(c.cmdline, baked)
		if (err == nil) != (c.refused == "") || err != nil && !strings.Contains(err.Error(), c.refused) {
			t.Errorf("lockedKernelOptions(%q) = %v, want refusal of %q", c.cmdline, err, c.refused)
		}
	}
}

// FuzzLockedKernelOptions: systemdWords splits as systemd's own
// extract_first_word does (refExtractWords, a transliteration of its C, in
// both of its backslash modes), and whenever any word systemd or the kernel
// would read is a forbidden option that the baked line does not hold,
// lockedKernelOptions refuses; whatever it returns is a refusal.
func FuzzLockedKernelOptions(f *testing.F) {
	f.Add("console=ttyS0 quiet", "systemd.unit=kiosk.target")
	f.Add(`"a b" 'c`, "")
	f.Add(`systemd.log_level=debug emergency=1`, "x")
	f.Add(`'"' systemd.debug_shell`, "")
	f.Add(`\"x systemd.debug_shell "`, "")
	f.Add("'\"'", "emergency")
	f.Add(`"module_blacklist=ahci"`, "x module_blacklist=ahci")
	f.Add("x\xa0module_blacklist=ahci \u00a0libata.force=1:disable", "")
	f.Add(`"module_blacklist=ahci"`, "x\xa0module_blacklist=ahci") // baked as the kernel splits it
	f.Add("efi=debug,noruntime vfio-pci.ids=144d:a808", "efi=debug")
	f.Add("systemd.crash_shell=1 rescue -s usbcore.nousb", "")
	f.Fuzz(func(t *testing.T, line, baked string) {
		err := lockedKernelOptions(line, baked)
		if err != nil && !strings.Contains(err.Error(), ": refused: the initramfs is locked") {
			t.Fatalf("lockedKernelOptions(%q) = %v: not a refusal", line, err)
		}
		// The kernel and systemd read the line as a C string: keel's split
		// below sees what they see.
		line, baked = cString(line), cString(baked)
		bakedParams := map[string]bool{} // what the builder baked, as keel and as the kernel split it
		for _, p := range append(kargs.Split(baked), kargs.SplitKernel(baked)...) {
			bakedParams[p.String()] = true
		}
		for _, p := range kargs.Split(line) { // keel's split
			if !bakedParams[p.String()] && slices.Contains(hidingOptions, p.Name()) && err == nil {
				t.Fatalf("lockedKernelOptions(%q, baked %q) = nil: the kernel applies %s", line, baked, p)
			}
			// efi= hides the EFI variables with noruntime among its options.
			if !bakedParams[p.String()] && p.Name() == "efi" && slices.Contains(strings.Split(p.Value, ","), "noruntime") && err == nil {
				t.Fatalf("lockedKernelOptions(%q, baked %q) = nil: the kernel applies %s", line, baked, p)
			}
		}
		bakedNames := map[string]bool{} // device-hiding options the baked line holds, by name
		for _, p := range append(kargs.Split(baked), kargs.SplitKernel(baked)...) {
			bakedNames[p.Name()] = true
		}
		// The kernel's own split, transliterated: no device-hiding option
		// the kernel applies may pass, unless the baked line holds it.
		for _, param := range refKernelParams(line) {
			name := strings.ReplaceAll(param, "-", "_")
			if !bakedNames[name] && slices.Contains(hidingOptions, name) && err == nil {
				t.Fatalf("lockedKernelOptions(%q, baked %q) = nil: the kernel applies %s=", line, baked, param)
			}
		}
		for _, escapes := range []bool{false, true} {
			words := refExtractWords(line, escapes)
			if got := systemdWords(line, escapes); !slices.Equal(got, words) {
				t.Fatalf("systemdWords(%q, escapes %v) = %q, systemd's extract_first_word gives %q", line, escapes, got, words)
			}
			bakedWords := refExtractWords(baked, escapes)
			for _, w := range words {
				if !slices.Contains(bakedWords, w) && forbiddenWord(w) && err == nil {
					t.Fatalf("lockedKernelOptions(%q, baked %q) = nil: systemd reads %q (escapes %v)", line, baked, w, escapes)
				}
			}
		}
	})
}

// hidingOptions is the test's own list of the kernel options a locked line
// may not hold unbaked (init/locked.go's deviceHidingOptions, written out
// again: a name dropped there fails here).
var hidingOptions = []string{"module_blacklist", "initcall_blacklist", "modprobe.blacklist", "libata.force", "scsi_mod.scan",
	"noefi", "pci_stub.ids", "vfio_pci.ids", "usb_storage.quirks", "usbcore.authorized_default", "usbcore.nousb", "nousb"}

// forbiddenWord is the test's own statement of what a locked line may not
// give systemd: any systemd option but those it lists (an allow-list, as
// the init's: a systemd option the init forgot would pass), and the
// runlevel words.
func forbiddenWord(w string) bool {
	k, _, v := strings.Cut(w, "=")
	k = strings.ReplaceAll(k, "-", "_")
	allowed := []string{"systemd.log_level", "systemd.log_target", "systemd.log_color", "systemd.log_location",
		"systemd.log_time", "systemd.log_tid", "systemd.show_status", "systemd.status_unit_format",
		"systemd.volatile", "systemd.verity", "systemd.verity_root_data", "systemd.verity_root_hash",
		"systemd.verity_root_options"}
	if strings.HasPrefix(k, "systemd.") && !strings.HasPrefix(k, "systemd.journald.") && !slices.Contains(allowed, k) {
		return true
	}
	return !v && slices.Contains([]string{"emergency", "rescue", "single", "s", "S", "1", "_s", "_b"}, k)
}

// refKernelParams gives the parameter names the kernel finds in line:
// parse_args's loop over next_arg (lib/cmdline.c, lib/params.c) with the
// kernel's isspace (lib/ctype.c: the ASCII white space and 0xA0), kept in
// the shape of the C to be checked against it line by line.
func refKernelParams(line string) []string {
	isspace := func(c byte) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' || c == 0xa0
	}
	args := []byte(line)
	if i := bytes.IndexByte(args, 0); i >= 0 {
		args = args[:i] // a C string
	}
	skip := func() {
		for len(args) > 0 && isspace(args[0]) {
			args = args[1:]
		}
	}
	var params []string
	skip()
	for len(args) > 0 {
		inQuote, quoted := false, false
		if args[0] == '"' {
			args = args[1:]
			inQuote, quoted = true, true
		}
		i, equals := 0, 0
		for ; i < len(args); i++ {
			if isspace(args[i]) && !inQuote {
				break
			}
			if equals == 0 && args[i] == '=' {
				equals = i
			}
			if args[i] == '"' {
				inQuote = !inQuote
			}
		}
		param := args[:i]
		if equals != 0 {
			param = args[:equals]
		} else if quoted && i > 0 && param[i-1] == '"' {
			param = param[:i-1] // a quoted word's closing quote
		}
		if string(param) == "--" && equals == 0 {
			break // parse_args stops: the rest is the init's
		}
		params = append(params, string(param))
		if i < len(args) {
			i++
		}
		args = args[i:]
		skip()
	}
	return params
}

// refExtractWords is systemd's extract_first_word (src/basic/extract-word.c)
// with EXTRACT_UNQUOTE|EXTRACT_RELAX, and EXTRACT_RETAIN_ESCAPE unless
// escapes, called until it returns no word, as proc_cmdline_parse does;
// kept in the shape of the C (a cursor, a backslash flag, the quote being
// inside) to be checked against it line by line.
func refExtractWords(line string, escapes bool) []string {
	var words []string
	p := 0
	for p >= 0 {
		w, ok := refExtractFirstWord(line, &p, escapes)
		if !ok {
			break
		}
		words = append(words, w)
	}
	return words
}

func refExtractFirstWord(line string, p *int, escapes bool) (string, bool) {
	at := func() byte {
		if *p < len(line) {
			return line[*p]
		}
		return 0
	}
	sep := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	var s []byte
	var quote byte
	backslash := false
	c := at()
	next := func() { *p++; c = at() } // C's (*p)++, c = **p
	for ; ; next() {                  // skip the separators before the word
		if c == 0 {
			*p = -1
			return "", false
		}
		if !sep(c) {
			s = []byte{}
			break
		}
	}
	for ; ; next() {
		switch {
		case backslash:
			if c == 0 {
				*p = -1 // EXTRACT_RELAX: a trailing backslash is eaten
				return string(s), true
			}
			s = append(s, c)
			backslash = false
		case quote != 0:
			for ; ; next() {
				if c == 0 {
					*p = -1 // EXTRACT_RELAX: an open quote ends with the line
					return string(s), true
				} else if c == quote {
					quote = 0
					break
				} else if c == '\\' && escapes {
					backslash = true
					break
				}
				s = append(s, c)
			}
		default:
			for ; ; next() {
				if c == 0 {
					*p = -1
					return string(s), true
				} else if c == '\'' || c == '"' {
					quote = c
					break
				} else if c == '\\' && escapes {
					backslash = true
					break
				} else if sep(c) {
					for ; sep(c); next() {
					}
					if c == 0 {
						*p = -1
					}
					return string(s), true
				}
				s = append(s, c)
			}
		}
	}
}

// TestAmbiguous: an explicit DEVSPEC of a locked boot must match one
// device; keel's own device-mapper devices (a verity or LUKS mapping shows
// the file system under it) do not count. The devices are named sorted:
// the message of the same two disks was not the same from boot to boot.
func TestAmbiguous(t *testing.T) {
	s, err := devspec.Parse("UUID=1234")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		matches []string
		err     string
	}{
		{nil, ""},
		{[]string{"/dev/vda6"}, ""},
		{[]string{"/dev/vda6", "/dev/dm-0"}, ""},
		{[]string{"/dev/vda6", "/dev/sda1"}, "data device UUID=1234: 2 devices match (/dev/sda1, /dev/vda6): the initramfs is locked and will not guess"},
		// Named in one order whatever order the disks were announced in.
		{[]string{"/dev/sda1", "/dev/vda6"}, "data device UUID=1234: 2 devices match (/dev/sda1, /dev/vda6): the initramfs is locked and will not guess"},
	} {
		err := ambiguous("data", s, c.matches)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("ambiguous(%q) = %v, want %q", c.matches, err, c.err)
		}
	}
}
