// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"errors"
	"testing"
)

// FuzzParse: any line parses or fails with an error, never panics; what
// parses expands (parameters, arithmetic, globs) without panicking.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"echo shell-$((6*7)); cat /run/keel/boot.json | grep -c failure",
		"a=1 b='x y' cmd \"$a\" ${b} $? 2>&1 > out < in >> app",
		"echo 'unterminated", "ls *.txt [a-", "$(( (1+2) * -3 % 4 / 5 ))", "a && b || c | d ; e\n f",
		"echo \\\n x", "x=$((", "${", "2>", ">&", "#", "",
		"if true; then echo x; fi", "echo `ls` \"`x`\"", "f() { x; }", "cat <<EOF", "'if' ! {",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		l, err := Parse(line)
		if err != nil {
			if l != nil {
				t.Fatalf("Parse(%q) returned a list and an error", line)
			}
			return
		}
		s := &Shell{vars: map[string]string{"X": "1", "Y": "a b"}, noGlob: true}
		for _, ao := range l {
			for _, c := range ao.pipe {
				if len(c.words) == 0 && len(c.redirs) == 0 {
					t.Fatalf("Parse(%q): empty command", line)
				}
				if _, err := s.expand(c.words); err != nil && errors.Is(err, ErrIncomplete) {
					t.Fatalf("expansion of a parsed line is incomplete: %v", err)
				}
			}
		}
	})
}
