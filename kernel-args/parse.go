// SPDX-License-Identifier: Apache-2.0

package kargs

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// refusedLocked is the reason of every Problem a locked initramfs causes.
const refusedLocked = "refused: initramfs is locked"

// maxShown bounds how much of a value a Problem prints: the console and the
// boot report must stay readable whatever the command line holds.
const maxShown = 80

// Problem is an option the parser ignored: refused, or with a value it could
// not use. The previous value of the setting was kept.
type Problem struct {
	Option   string // the option as written
	Value    string // its value, "" for a bare option
	Reason   string // what was wrong and what was expected
	HasValue bool   // written with '=' ("slot=" has an empty value; "slot" none)
}

// Refused reports whether the option was ignored because the initramfs is
// locked (whatever its value), not because its value was bad.
func (p Problem) Refused() bool { return strings.HasPrefix(p.Reason, refusedLocked) }

// Error is "option=value: reason", with the value quoted and shortened
// (`slot="": …` for an empty value), or "option: reason" for a bare option.
func (p Problem) Error() string {
	if !p.HasValue && p.Value == "" {
		return fmt.Sprintf("%s: %s", shown(p.Option), p.Reason)
	}
	return fmt.Sprintf("%s=%s: %s", shown(p.Option), strconv.Quote(shown(p.Value)), p.Reason)
}

func (p Problem) String() string { return p.Error() }

// Written is the option as the command line had it, "option=value" (or the
// bare option), unquoted and shortened like Error's.
func (p Problem) Written() string {
	if !p.HasValue && p.Value == "" {
		return shown(p.Option)
	}
	return shown(p.Option) + "=" + shown(p.Value)
}

// ShownWord is a word of the command line as a message names it: as it
// is when it is short and printable, else quoted (escape sequences and
// control characters written out) and cut to maxShown bytes, so that the
// console stays readable whatever the line holds.
func ShownWord(s string) string {
	plain := len(s) <= maxShown
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] >= ' ' && s[i] < 0x7f
	}
	if plain {
		return s
	}
	return strconv.Quote(shown(s))
}

// shown cuts s to maxShown bytes at a rune boundary.
func shown(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Parse applies cmdline over base, in order, the last of repeated options
// winning. Unknown options are ignored silently: they belong to the kernel
// or to systemd. Everything after the kernel's "--" (KernelOptions) belongs
// to init and is ignored.
// With locked, options that would weaken the boot are refused (see
// docs/cmdline.md), and the result never has rd.break, verity=off or the
// shell emergency policy, whatever base held. Parse never fails: each option
// it ignores is a Problem.
func Parse(cmdline string, base Config, locked bool) (Config, []Problem) {
	return parse(cmdline, base, policy{locked: locked})
}

// FromBaked parses the command line baked into the initramfs over Defaults.
// The baked line is as trusted as the initramfs, so even when locked it may
// set roothash= and init=; options that weaken a locked initramfs are still
// refused (mkinitrd can report them at build time).
func FromBaked(baked string, locked bool) (Config, []Problem) {
	return parse(baked, Defaults(), policy{locked: locked, trusted: true})
}

// policy says which options the command line being parsed may use.
type policy struct {
	locked  bool // refuse options that weaken the boot
	trusted bool // the line comes from the initramfs itself, not the boot loader
}

// refuseUntrusted reports whether an option that replaces what the
// initramfs trusts (root hash, init) must be refused.
func (p policy) refuseUntrusted() bool { return p.locked && !p.trusted }

type parser struct {
	cfg      Config
	base     Config // what the line is parsed over: the baked defaults
	pol      policy
	problems []Problem
}

func parse(cmdline string, base Config, pol policy) (Config, []Problem) {
	p := &parser{cfg: base, base: base, pol: pol}
	p.cfg.VerityOptions = append([]string(nil), base.VerityOptions...)
	for _, par := range Split(KernelOptions(cmdline)) {
		p.apply(par)
	}
	if pol.locked {
		p.cfg = lockDown(p.cfg)
	}
	return p.cfg, p.problems
}

func (p *parser) apply(par Param) {
	set := p.setter(par.Name())
	if set == nil {
		return
	}
	if reason := set(par); reason != "" {
		p.problems = append(p.problems, Problem{Option: par.Key, Value: par.Value, Reason: reason, HasValue: par.HasValue})
	}
}
