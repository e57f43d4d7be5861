// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	kargs "github.com/keel-boot/keel/kernel-args"
	"github.com/keel-boot/keel/report"
)

// What a locked initramfs refuses, and what every boot says loudly when it
// runs something nothing authenticated: docs/security.md.

// commandLineProblems logs the options the command line parser ignored.
// Those refused because the initramfs is locked go to the console whatever
// the log level and to the report's refused list; the others are warnings.
func (b *boot) commandLineProblems(problems []kargs.Problem) {
	for _, p := range problems {
		if !p.Refused() {
			b.log.Warnf("command line: %v", p)
			b.rep.Warn("command line: %v", p)
			continue
		}
		b.loud("command line: %v", p)
		b.rep.Refused = append(b.rep.Refused, report.Refused{Option: p.Written(), Reason: p.Reason})
	}
}

// checkAuthenticated says, on the console and in the report, that the root
// hash of img was not authenticated by a trusted key (no keys are baked in,
// so the unsigned header was accepted). A locked initramfs refuses such a
// root: it has keys unless its baked configuration could not be read.
func (b *boot) checkAuthenticated(img *image) error {
	if img.authed {
		return nil
	}
	if b.baked.Locked {
		return fmt.Errorf("%s: root hash not authenticated: the initramfs is locked but has no trusted keys (is its baked configuration readable?), expected a header signed by a --trust key", img.hashDev)
	}
	b.warnLoud("root NOT AUTHENTICATED: no trusted keys are baked into the initramfs (mkinitrd --trust), so the unsigned header on %s was accepted: anyone who can write that disk chooses what runs", img.hashDev)
	return nil
}

// checkDataEncryption refuses a plain data partition when the initramfs
// requires an encrypted one (mkinitrd --data-must-be-encrypted, the locked
// default). mountData calls it after probing the device; the error makes
// the boot volatile, loudly.
func (b *boot) checkDataEncryption(fsType string, encrypted bool) error {
	return dataEncryption(b.baked.DataMustBeEncrypted, fsType, encrypted)
}

// dataEncryption is checkDataEncryption's decision.
func dataEncryption(mustEncrypt bool, fsType string, encrypted bool) error {
	if !mustEncrypt || encrypted {
		return nil
	}
	return fmt.Errorf("found plain %s, expected LUKS2: this initramfs uses only an encrypted data partition "+
		"(mkinitrd --data-must-be-encrypted, the --locked default), since whoever can write a plain one "+
		"controls the upper layer over the verified root", fsType)
}

// alarm reports msg, which the operator must see, everywhere at once: the
// kernel log at error level, the console whatever the log level, and the
// boot report's warnings.
func (b *boot) alarm(msg string) {
	b.log.Errorf("%s", msg)
	b.log.Console("keel: WARNING: %s", msg)
	b.rep.Warn("%s", msg)
}

// warnLoud is loud and a warning of the boot report.
func (b *boot) warnLoud(format string, args ...any) {
	b.loud(format, args...)
	b.rep.Warn(format, args...)
}

// loud logs a warning the operator must see whatever the log level: in the
// kernel log at warning level, and straight to the console when the kernel
// would not show that level there (quiet sets console_loglevel to 4, which
// hides warnings: https://docs.kernel.org/core-api/printk-basics.html).
func (b *boot) loud(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.log.Warnf("%s", msg)
	printk, err := os.ReadFile("/proc/sys/kernel/printk")
	if err != nil || consoleHides(string(printk), prioWarn) {
		b.log.Console("keel: WARNING: %s", msg)
	}
}

// consoleHides reports whether the kernel keeps kmsg records of priority
// prio off the console, given /proc/sys/kernel/printk, whose first field is
// console_loglevel: only records of a lower priority number are printed.
// Unreadable contents count as hidden.
func consoleHides(printk string, prio int) bool {
	level, ok := consoleLevel(printk)
	return !ok || prio >= level
}

// consoleLevel is console_loglevel, the first field of
// /proc/sys/kernel/printk's contents; false when they hold none.
func consoleLevel(printk string) (int, bool) {
	fields := strings.Fields(printk)
	if len(fields) == 0 {
		return 0, false
	}
	level, err := strconv.Atoi(fields[0])
	return level, err == nil
}

// deviceHidingOptions are kernel options that keep devices or drivers from
// appearing: the kernel applied them before keel started, so keel cannot
// ignore them. On a locked machine they could hide the real system disk so
// that a stick with keel labels is chosen instead. Parameters of a storage
// module keel loads itself never reach it (finit_module gets none of the
// command line's), but a kernel with libata or the SCSI core built in
// applies libata.force=N:disable and scsi_mod.scan=none.
var deviceHidingOptions = []string{"module_blacklist", "initcall_blacklist", "modprobe.blacklist", "libata.force", "scsi_mod.scan",
	// The EFI variables, LoaderDevicePartUUID among them (loader.go):
	// without it the firmware's boot partition no longer chooses the
	// system disk. efi= is refused only with noruntime (hidesDevices).
	"noefi",
	// A kernel with pci-stub or vfio-pci built in hands them the PCI
	// devices these ids name before any driver keel loads sees them (the
	// system disk's NVMe or SATA controller); with usbcore or usb-storage
	// built in, the USB ones keep a USB system disk from appearing. Not
	// a complete list: docs/security.md.
	"pci_stub.ids", "vfio_pci.ids", "usb_storage.quirks", "usbcore.authorized_default", "usbcore.nousb", "nousb"}

// hidesDevices reports whether the kernel option p is one of
// deviceHidingOptions, or efi= with noruntime among its comma-separated
// options (the kernel's parse_efi_cmdline), which hides the EFI variables
// as noefi does.
func hidesDevices(p kargs.Param) bool {
	if p.Name() == "efi" {
		return slices.Contains(strings.Split(p.Value, ","), "noruntime")
	}
	return slices.Contains(deviceHidingOptions, p.Name())
}

// systemdAllowed are the systemd options a locked initramfs lets through:
// what systemd logs and shows, and those keel reads itself (the parser
// refuses their overrides). Every other systemd.* option can change what the
// booted system runs — systemd.run= runs a command as root, systemd.unit=
// and systemd.wants= start a rescue target or debug-shell.service,
// systemd.mount-extra= mounts a second disk's file system, systemd.set_credential=
// hands credentials to units — and keel cannot take an option off the
// command line systemd reads.
var systemdAllowed = []string{
	"systemd.log_level", "systemd.log_target", "systemd.log_color", "systemd.log_location",
	"systemd.log_time", "systemd.log_tid", "systemd.show_status", "systemd.status_unit_format",
	"systemd.volatile", "systemd.verity", "systemd.verity_root_data", "systemd.verity_root_hash",
	"systemd.verity_root_options",
}

// runlevelWords are the words the kernel hands to the init as arguments
// that make systemd boot into rescue.target or emergency.target.
var runlevelWords = []string{"emergency", "rescue", "single", "s", "S", "1", "-s", "-b"}

// lockedKernelOptions refuses to boot a locked initramfs whose command line
// holds a device-hiding kernel option, a systemd option that changes what
// the booted system runs (systemdAllowed), or a rescue runlevel word,
// naming it. An option the baked line holds word for word (mkinitrd
// --cmdline) is the builder's and allowed, though it is on the real line
// that systemd reads it.
//
// The line is split four ways and every word of each is checked: as keel
// splits it and as the kernel does (double quotes only; the kernel also at
// the byte 0xA0, kargs.SplitKernel), and as systemd splits
// /proc/cmdline (systemdWords: single quotes too, a backslash literal since
// systemd 245, an escape from 228 to 244; earlier systemd split otherwise and
// is not supported). The splits differ: '"' systemd.debug_shell
// is one harmless word to the kernel and the word systemd.debug_shell to
// systemd, so checking one split alone lets the other through.
func lockedKernelOptions(cmdline, baked string) error {
	cmdline, baked = cString(cmdline), cString(baked)
	builder := map[string]bool{}
	for _, p := range append(kargs.Split(baked), kargs.SplitKernel(baked)...) {
		builder[p.String()] = true
	}
	// keel's split and the kernel's, which also separates at 0xA0: the
	// kernel applies what its own split gives.
	for _, p := range append(kargs.Split(cmdline), kargs.SplitKernel(cmdline)...) {
		if builder[p.String()] {
			continue
		}
		if hidesDevices(p) {
			return fmt.Errorf("command line: %s: refused: the initramfs is locked and this kernel option hides devices or drivers (the system disk could be replaced by another disk); remove it", kargs.ShownWord(p.String()))
		}
		// Quotes and backslashes left in a word as the kernel splits it
		// are systemd's to remove: 'systemd.run=…' is its systemd.run=.
		word := strings.Map(func(r rune) rune {
			if r == '\'' || r == '"' || r == '\\' {
				return -1
			}
			return r
		}, p.String())
		if err := refuseSystemdWord(word, p.String()); err != nil {
			return err
		}
	}
	for _, escapes := range []bool{false, true} {
		allowed := map[string]bool{}
		for _, w := range systemdWords(baked, escapes) {
			allowed[w] = true
		}
		for _, w := range systemdWords(cmdline, escapes) {
			if err := refuseSystemdWord(w, w); !allowed[w] && err != nil {
				return err
			}
		}
	}
	return nil
}

// cString is s up to its first NUL: the command line is a C string to the
// kernel and to systemd, which never read past one.
func cString(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// refuseSystemdWord refuses word, one word of the line as systemd reads it,
// if it is a systemd option that is not allowed or a rescue runlevel word;
// shown is how the message names it.
func refuseSystemdWord(word, shown string) error {
	key, _, hasValue := strings.Cut(word, "=")
	name := strings.ReplaceAll(key, "-", "_") // systemd, like the kernel, takes - and _ as one
	if strings.HasPrefix(name, "systemd.") && !slices.Contains(systemdAllowed, name) && !strings.HasPrefix(name, "systemd.journald.") {
		return fmt.Errorf("command line: %s: refused: the initramfs is locked and this systemd option can change what the booted system runs (a command, a unit, a mount, a shell); remove it, or bake it with mkinitrd --cmdline to allow exactly this value", kargs.ShownWord(shown))
	}
	if !hasValue && slices.Contains(runlevelWords, strings.ReplaceAll(name, "_", "-")) {
		return fmt.Errorf("command line: %s: refused: the initramfs is locked and this word boots systemd into a rescue or emergency shell; remove it", kargs.ShownWord(shown))
	}
	return nil
}

// systemdWords splits line as systemd splits /proc/cmdline
// (extract_first_word with EXTRACT_UNQUOTE and EXTRACT_RELAX): space, tab,
// newline and carriage return separate words; a single or a double quote
// opens a group that runs to the same quote (the other one is literal
// inside) or, unbalanced, to the end of the line, and the quotes are
// removed. With escapes false a backslash is an ordinary character
// (EXTRACT_RETAIN_ESCAPE, systemd 245 and later); with escapes true it
// makes the next character literal, quotes and spaces too (earlier
// systemd). A NUL ends the line.
func systemdWords(line string, escapes bool) []string {
	var words []string
	var b strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line) && line[i] != 0; i++ {
		c := line[i]
		switch {
		case escapes && c == '\\':
			inWord = true
			if i+1 < len(line) && line[i+1] != 0 {
				i++
				b.WriteByte(line[i])
			}
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b.WriteByte(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}
