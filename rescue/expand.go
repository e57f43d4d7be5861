// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// expand turns words into fields: parameters and arithmetic are replaced,
// unquoted expansions are split at white space, unquoted patterns are
// globbed (a pattern that matches nothing stays as it is, as in sh).
func (s *Shell) expand(words []word) ([]string, error) {
	var out []string
	for _, w := range words {
		f, err := s.expandWord(w)
		if err != nil {
			return nil, err
		}
		out = append(out, f...)
	}
	return out, nil
}

type field struct {
	text, pattern strings.Builder
	glob, started bool
}

func (s *Shell) expandWord(w word) ([]string, error) {
	var fields []*field
	cur := &field{}
	add := func(text string, quoted bool) {
		cur.started = true
		cur.text.WriteString(text)
		if quoted {
			cur.pattern.WriteString(escapeGlob(text))
			return
		}
		cur.pattern.WriteString(text)
		if strings.ContainsAny(text, "*?[") {
			cur.glob = true
		}
	}
	for _, pt := range w {
		var v string
		switch pt.kind {
		case lit:
			add(pt.text, pt.quoted)
			continue
		case param:
			v = s.Get(pt.text)
		case arith:
			n, err := s.arith(pt.text)
			if err != nil {
				return nil, err
			}
			v = strconv.FormatInt(n, 10)
		}
		if pt.quoted {
			add(v, true)
			continue
		}
		// Field splitting of an unquoted expansion; its pieces are never
		// globbed (a value with '*' stays as it is).
		pieces := strings.Fields(v)
		if len(v) > 0 && isSpace(v[0]) && cur.started {
			fields, cur = append(fields, cur), &field{}
		}
		for i, piece := range pieces {
			if i > 0 {
				fields, cur = append(fields, cur), &field{}
			}
			add(piece, true)
		}
		if len(v) > 0 && isSpace(v[len(v)-1]) && cur.started {
			fields, cur = append(fields, cur), &field{}
		}
	}
	if cur.started {
		fields = append(fields, cur)
	}
	var out []string
	for _, f := range fields {
		if f.glob && !s.noGlob {
			if m, err := filepath.Glob(f.pattern.String()); err == nil && len(m) > 0 {
				out = append(out, m...)
				continue
			}
		}
		out = append(out, f.text.String())
	}
	return out, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func escapeGlob(s string) string {
	if !strings.ContainsAny(s, "*?[\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("*?[\\", s[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// arith evaluates the integer expression of $((…)): + - * / % with the
// usual precedence, unary + and -, parentheses, decimal numbers and
// variable names (unset or empty is 0).
func (s *Shell) arith(expr string) (int64, error) {
	a := &arithParser{s: expr, sh: s}
	v, err := a.sum(0)
	if err != nil {
		return 0, fmt.Errorf("$((%s)): %w", expr, err)
	}
	a.space()
	if a.pos < len(a.s) {
		return 0, fmt.Errorf("$((%s)): unexpected %q at column %d", expr, a.s[a.pos], a.pos+1)
	}
	return v, nil
}

type arithParser struct {
	s   string
	pos int
	sh  *Shell
}

const maxArithDepth = 100

func (a *arithParser) space() {
	for a.pos < len(a.s) && (isSpace(a.s[a.pos]) || a.s[a.pos] == '\r') {
		a.pos++
	}
}

func (a *arithParser) sum(depth int) (int64, error) {
	v, err := a.product(depth)
	for err == nil {
		a.space()
		if a.pos >= len(a.s) || (a.s[a.pos] != '+' && a.s[a.pos] != '-') {
			return v, nil
		}
		op := a.s[a.pos]
		a.pos++
		var r int64
		if r, err = a.product(depth); err == nil {
			if op == '+' {
				v += r
			} else {
				v -= r
			}
		}
	}
	return 0, err
}

func (a *arithParser) product(depth int) (int64, error) {
	v, err := a.unary(depth)
	for err == nil {
		a.space()
		if a.pos >= len(a.s) || strings.IndexByte("*/%", a.s[a.pos]) < 0 {
			return v, nil
		}
		op := a.s[a.pos]
		a.pos++
		var r int64
		if r, err = a.unary(depth); err != nil {
			break
		}
		switch {
		case op == '*':
			v *= r
		case r == 0:
			return 0, fmt.Errorf("division by zero")
		case r == -1:
			v = -v // MinInt64 / -1 would trap
		case op == '/':
			v /= r
		default:
			v %= r
		}
	}
	return 0, err
}

func (a *arithParser) unary(depth int) (int64, error) {
	if depth > maxArithDepth {
		return 0, fmt.Errorf("nested too deeply")
	}
	a.space()
	if a.pos >= len(a.s) {
		return 0, fmt.Errorf("expected a number at the end")
	}
	switch c := a.s[a.pos]; {
	case c == '-' || c == '+':
		a.pos++
		v, err := a.unary(depth + 1)
		if c == '-' {
			v = -v
		}
		return v, err
	case c == '(':
		a.pos++
		v, err := a.sum(depth + 1)
		if err != nil {
			return 0, err
		}
		a.space()
		if a.pos >= len(a.s) || a.s[a.pos] != ')' {
			return 0, fmt.Errorf("expected ) at column %d", a.pos+1)
		}
		a.pos++
		return v, nil
	case c >= '0' && c <= '9':
		start := a.pos
		for a.pos < len(a.s) && a.s[a.pos] >= '0' && a.s[a.pos] <= '9' {
			a.pos++
		}
		return strconv.ParseInt(a.s[start:a.pos], 10, 64)
	case isNameChar(c, true):
		start := a.pos
		for a.pos < len(a.s) && isNameChar(a.s[a.pos], false) {
			a.pos++
		}
		name := a.s[start:a.pos]
		val := strings.TrimSpace(a.sh.Get(name))
		if val == "" {
			return 0, nil
		}
		v, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s is %q, expected an integer", name, val)
		}
		return v, nil
	default:
		return 0, fmt.Errorf("unexpected %q at column %d", c, a.pos+1)
	}
}
