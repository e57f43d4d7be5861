// SPDX-License-Identifier: Apache-2.0

package kargs

import "strings"

// Param is one word of the command line, split at its first '='.
type Param struct {
	Key      string // as written; see Name for the form options are matched on
	Value    string // quotes removed; "" when HasValue is false
	HasValue bool   // the word contained '=' ("root=" has an empty value)
}

// Name is the key with '-' replaced by '_': the kernel and systemd treat the
// two as the same character in option names (kernel/params.c parameqn), so
// root-a and root_a are one option. Dots are left alone.
func (p Param) Name() string {
	return strings.ReplaceAll(p.Key, "-", "_")
}

// String writes p back in command-line syntax, quoting the whole word when it
// holds whitespace (the kernel's too: the byte 0xA0), so that Split(p.String())
// yields p again and the kernel reads one word.
func (p Param) String() string {
	s := p.Key
	if p.HasValue {
		s += "=" + p.Value
	}
	// The kernel's isspace also separates at the byte 0xA0 (SplitKernel):
	// a word holding one, written bare, is two words to the kernel, and a
	// "--" after it ends the options it reads (KernelOptions), an option
	// written after it with them. mkinitrd's baked rd.watchdog= was lost
	// so (found by the fuzz smoke).
	if hasSpace(s) || strings.IndexByte(s, 0xA0) >= 0 {
		return `"` + s + `"`
	}
	// A word "--" that Split made of one the kernel does not end its
	// options at (-""-) is written so again: written bare (or "--",
	// which the kernel's next_arg unquotes) it would end them there.
	if s == "--" {
		return `-""-`
	}
	return s
}

// Join writes params as one command line; Split(Join(ps)) == ps for any ps
// that Split returned.
func Join(params []Param) string {
	words := make([]string, len(params))
	for i, p := range params {
		words[i] = p.String()
	}
	return strings.Join(words, " ")
}

// Split tokenises a command line the way the kernel does: words are separated
// by whitespace, double quotes group (opt="a b" is one word), and each word is
// split at its first '='. Quotes are removed wherever they appear in a word,
// as systemd does; for the forms the kernel documents ("opt=a b" and
// opt="a b") the result is the same as the kernel's. An unbalanced quote runs
// to the end of the line. NUL counts as whitespace, so a NUL-separated
// /proc/PID/cmdline read by mistake still splits into words. Empty words
// (a bare "") are dropped. Split never fails.
func Split(cmdline string) []Param { return split(cmdline, isSpace) }

// SplitKernel is Split with the kernel's own idea of white space, its
// isspace (lib/ctype.c, a Latin-1 table): the byte 0xA0, Latin-1's no-break
// space, separates words too, also where it is the second byte of a UTF-8
// character (C2 A0, the no-break space; C3 A0, "à"). The kernel applies
// the options of that split before keel runs, so a locked init checks it
// (x<0xA0>module_blacklist=ahci is one harmless word to Split and systemd,
// and the option to the kernel). keel's own options are read with Split,
// so that a label such as "voilà" is one value.
func SplitKernel(cmdline string) []Param {
	return split(cmdline, kernelSpace)
}

// kernelSpace is a separator of the kernel's split: isSpace, and 0xA0.
func kernelSpace(c byte) bool { return isSpace(c) || c == 0xa0 }

// KernelOptions is cmdline up to the word with which the kernel ends its
// own parameters: "--" as the kernel's next_arg reads it (SplitNextArg),
// with no '='. "--" ends them and -""- does not, where Split, removing
// every quote, reads "--" in both. What follows is the init's argv.
func KernelOptions(cmdline string) string {
	for _, w := range kernelWords(cmdline) {
		if p := nextArg(cmdline[w[0]:w[1]]); p.Key == "--" && !p.HasValue {
			return cmdline[:w[0]]
		}
	}
	return cmdline
}

// SplitNextArg splits cmdline into parameters exactly as the kernel's
// next_arg does, for the options the kernel itself applies (panic=): the
// words of SplitKernel, but only a word's leading quote (and then its
// trailing one) and a value's leading quote (and then the word's trailing
// one) are removed, never a quote inside, so panic=5" is the value 5",
// which the kernel refuses, where SplitKernel reads 5.
func SplitNextArg(cmdline string) []Param {
	var out []Param
	for _, w := range kernelWords(cmdline) {
		out = append(out, nextArg(cmdline[w[0]:w[1]]))
	}
	return out
}

// nextArg is the parameter the kernel's next_arg makes of one word.
func nextArg(w string) Param {
	quoted := strings.HasPrefix(w, `"`)
	if quoted {
		w = w[1:]
	}
	p, consumed := Param{Key: w}, false
	if key, val, ok := strings.Cut(w, "="); ok {
		p = Param{Key: key, Value: val, HasValue: true}
		if strings.HasPrefix(val, `"`) {
			// The value's quote, then the word's last character if it is
			// one (the same quote, when the value is only that).
			consumed = strings.HasSuffix(w, `"`)
			p.Value = strings.TrimSuffix(val[1:], `"`)
		}
	}
	if quoted && !consumed && strings.HasSuffix(w, `"`) {
		if p.HasValue {
			p.Value = strings.TrimSuffix(p.Value, `"`)
		} else {
			p.Key = strings.TrimSuffix(p.Key, `"`)
		}
	}
	return p
}

// kernelWords are the start and end of each word of cmdline as the kernel
// splits it: at its spaces (0xA0 too) outside double quotes.
func kernelWords(cmdline string) [][2]int { return wordSpans(cmdline, kernelSpace) }

// split is the words of cmdline, cut at space outside double quotes, with
// their quotes removed; a word that was only quotes is none.
func split(cmdline string, space func(byte) bool) []Param {
	var params []Param
	for _, w := range wordSpans(cmdline, space) {
		if word := strings.ReplaceAll(cmdline[w[0]:w[1]], `"`, ""); word != "" {
			params = append(params, newParam(word))
		}
	}
	return params
}

// wordSpans are the start and end of each word of s: runs of bytes that
// are not space, or are inside double quotes.
func wordSpans(s string, space func(byte) bool) [][2]int {
	var out [][2]int
	for i := 0; i < len(s); {
		for i < len(s) && space(s[i]) {
			i++
		}
		if i == len(s) {
			break
		}
		start, inQuote := i, false
		for ; i < len(s) && (inQuote || !space(s[i])); i++ {
			if s[i] == '"' {
				inQuote = !inQuote
			}
		}
		out = append(out, [2]int{start, i})
	}
	return out
}

func newParam(word string) Param {
	key, value, found := strings.Cut(word, "=")
	return Param{Key: key, Value: value, HasValue: found}
}

func hasSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			return true
		}
	}
	return false
}

// isSpace is the kernel's isspace for ASCII, plus NUL. Bytes >= 0x80 are never
// space: they are parts of UTF-8 sequences (SplitKernel for the kernel's own
// split).
func isSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0:
		return true
	}
	return false
}
