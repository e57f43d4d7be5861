// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"strings"
	"testing"
)

// TestLanguageIsFrozen holds the shell to the subset docs/rescue-shell.md
// freezes: every construct it lists as not supported is a syntax error that
// says so, and nothing of the line runs.
func TestLanguageIsFrozen(t *testing.T) {
	for line, want := range map[string]string{
		"echo $(ls)":                     "command substitution $(…) is not supported",
		"echo `ls`":                      "command substitution `…` is not supported",
		"echo \"`ls`\"":                  "command substitution `…` is not supported",
		"echo ran & echo b":              "background jobs (&) are not supported",
		"if true; then echo ran; fi":     "control flow (if) is not supported",
		"echo ran; else echo x":          "control flow (if) is not supported",
		"for i in a; do echo ran; done":  "control flow (loops) is not supported",
		"while true; do echo ran; done":  "control flow (loops) is not supported",
		"until false; do echo ran; done": "control flow (loops) is not supported",
		"case x in x) echo ran;; esac":   "control flow (case) is not supported",
		"f() { echo ran; }":              "subshells and functions ( ) are not supported",
		"function f { echo ran; }":       "a function is not supported",
		"(echo ran)":                     "subshells and functions ( ) are not supported",
		"{ echo ran; }":                  "a command group { } is not supported",
		"! echo ran":                     "negation (!) is not supported",
		"cat <<EOF":                      "here-documents (<<) are not supported",
	} {
		s, out, errb := testShell(t)
		if st := s.Run(line); st != 2 || !strings.Contains(errb.String(), want) || out.Len() != 0 {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want status 2, nothing run, %q", line, st, out.String(), errb.String(), want)
		}
	}
}

// TestReservedWordsAsWords: only an unquoted reserved word at the start of a
// command is refused; as an argument, quoted or inside a word it is text.
func TestReservedWordsAsWords(t *testing.T) {
	for line, want := range map[string]string{
		"echo if then fi do done { } !": "if then fi do done { } !\n",
		"echo iffy done_ 'for'":         "iffy done_ for\n",
		"echo \"(x)\" '`'":              "(x) `\n",
		"echo $((2*(3+4)))":             "14\n",
	} {
		s, out, errb := testShell(t)
		if st := s.Run(line); st != 0 || out.String() != want {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want %q", line, st, out.String(), errb.String(), want)
		}
	}
	s, _, errb := testShell(t)
	if st := s.Run("'if' x"); st != 127 || strings.Contains(errb.String(), "not supported") {
		t.Errorf("'if' quoted: status %d, stderr %q; want a program not found", st, errb.String())
	}
}
