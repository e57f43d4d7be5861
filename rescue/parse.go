// SPDX-License-Identifier: Apache-2.0

// Package rescue is keel's built-in emergency shell: a small command
// interpreter linked into the init binary, so that an initramfs needs no
// busybox (1 MB) to give the operator a shell when the boot fails. The init
// runs it as a separate process when started as "sh" (mkinitrd links
// /bin/sh to /init).
//
// The language is the interactive subset of the POSIX shell that debugging
// a failed boot takes: commands with arguments, quoting ('…', "…", \),
// parameters ($VAR, ${VAR}, $?), arithmetic ($((…))), globbing (*, ?, […]),
// pipelines (|), lists (;, &&, ||), redirections (<, >, >>, 2>, 2>&1) and
// comments. There is no control flow (if, for, while, functions): for
// scripts, build the initramfs with a full busybox (mkinitrd --shell PATH).
// Commands are built in (see help); anything else is run as a program.
package rescue

import (
	"errors"
	"fmt"
	"strings"
)

// partKind says how a piece of a word is expanded.
type partKind int

const (
	lit   partKind = iota // literal text
	param                 // $NAME, ${NAME}, $?
	arith                 // $((expr))
)

// part is one piece of a word. quoted parts are not globbed.
type part struct {
	kind   partKind
	text   string
	quoted bool
}

// word is a command-line word before expansion.
type word []part

// redir is a redirection: fd (0, 1, 2) to or from a file, or 2>&1.
type redir struct {
	fd     int
	op     string // "<", ">", ">>", ">&"
	target word   // file name; for ">&" the fd number
}

// command is a simple command: words and redirections.
type command struct {
	words  []word
	redirs []redir
}

// pipeline is commands joined by |.
type pipeline []command

// andOr is a pipeline run after the previous one: op is "" (always, after
// ';' or at the start), "&&" or "||".
type andOr struct {
	op   string
	pipe pipeline
}

// list is everything on one input line.
type list []andOr

// ErrIncomplete is returned for a line that ends inside quotes or after an
// operator that needs more (a trailing |, && or ||).
var ErrIncomplete = errors.New("incomplete command")

// Parse parses one line of input.
func Parse(line string) (list, error) {
	p := &parser{s: line}
	return p.list()
}

type parser struct {
	s   string
	pos int
}

func (p *parser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *parser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\r') {
		p.pos++
	}
	if p.peek() == '#' {
		p.pos = len(p.s)
	}
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("syntax error at column %d: %s", p.pos+1, fmt.Sprintf(format, args...))
}

func (p *parser) list() (list, error) {
	var l list
	op := ""
	for {
		p.skipSpace()
		if p.peek() == '\n' {
			p.pos++
			continue
		}
		if p.pos >= len(p.s) {
			if op == "&&" || op == "||" {
				return nil, fmt.Errorf("%w: %s at the end of the line needs a command after it", ErrIncomplete, op)
			}
			return l, nil
		}
		pipe, err := p.pipeline()
		if err != nil {
			return nil, err
		}
		l = append(l, andOr{op: op, pipe: pipe})
		p.skipSpace()
		switch {
		case strings.HasPrefix(p.s[p.pos:], "&&"):
			op = "&&"
			p.pos += 2
		case strings.HasPrefix(p.s[p.pos:], "||"):
			op = "||"
			p.pos += 2
		case p.peek() == ';' || p.peek() == '\n':
			op = ""
			p.pos++
		case p.pos >= len(p.s):
			return l, nil
		case p.peek() == '&':
			return nil, p.errorf("background jobs (&) are not supported")
		default:
			return nil, p.errorf("unexpected %q", p.peek())
		}
	}
}

func (p *parser) pipeline() (pipeline, error) {
	var pipe pipeline
	for {
		c, err := p.command()
		if err != nil {
			return nil, err
		}
		pipe = append(pipe, c)
		p.skipSpace()
		if p.peek() != '|' || strings.HasPrefix(p.s[p.pos:], "||") {
			return pipe, nil
		}
		p.pos++
		for p.skipSpace(); p.peek() == '\n'; p.skipSpace() {
			p.pos++
		}
		if p.pos >= len(p.s) {
			return nil, fmt.Errorf("%w: | at the end of the line needs a command after it", ErrIncomplete)
		}
	}
}

// isOp reports whether c ends a word.
func isOp(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', ';', '|', '&', '<', '>':
		return true
	}
	return false
}

func (p *parser) command() (command, error) {
	var c command
	for {
		p.skipSpace()
		if p.pos >= len(p.s) {
			break
		}
		if r, ok, err := p.redirection(); err != nil {
			return c, err
		} else if ok {
			c.redirs = append(c.redirs, r)
			continue
		}
		if isOp(p.peek()) {
			break
		}
		w, err := p.word()
		if err != nil {
			return c, err
		}
		if what, ok := reservedWord(unquoted(w)); ok && len(c.words) == 0 {
			return c, p.errorf("%s is not supported: this shell has commands, pipelines, && and || (for scripts, mkinitrd --shell PATH puts busybox in)", what)
		}
		c.words = append(c.words, w)
	}
	if len(c.words) == 0 && len(c.redirs) == 0 {
		if p.pos >= len(p.s) {
			return c, p.errorf("expected a command")
		}
		return c, p.errorf("expected a command before %q", p.peek())
	}
	return c, nil
}

// reservedWord names what a POSIX reserved word starts; this shell has none
// of it, so at the start of a command such a word is an error, not a
// program name.
func reservedWord(s string) (string, bool) {
	switch s {
	case "if", "then", "elif", "else", "fi":
		return "control flow (if)", true
	case "for", "while", "until", "do", "done", "select":
		return "control flow (loops)", true
	case "case", "esac":
		return "control flow (case)", true
	case "function":
		return "a function", true
	case "{", "}":
		return "a command group { }", true
	case "!":
		return "negation (!)", true
	}
	return "", false
}

// unquoted is w's text when it is one unquoted literal, else "".
func unquoted(w word) string {
	if len(w) != 1 || w[0].kind != lit || w[0].quoted {
		return ""
	}
	return w[0].text
}

// redirection parses <, >, >>, N<, N>, N>>, N>&M at the current position.
func (p *parser) redirection() (redir, bool, error) {
	start := p.pos
	fd := -1
	if c := p.peek(); c >= '0' && c <= '2' && p.pos+1 < len(p.s) && (p.s[p.pos+1] == '<' || p.s[p.pos+1] == '>') {
		fd = int(c - '0')
		p.pos++
	}
	var r redir
	switch {
	case strings.HasPrefix(p.s[p.pos:], "<<"):
		return r, false, p.errorf("here-documents (<<) are not supported")
	case strings.HasPrefix(p.s[p.pos:], ">>"):
		r.op, p.pos = ">>", p.pos+2
	case strings.HasPrefix(p.s[p.pos:], ">&"):
		r.op, p.pos = ">&", p.pos+2
	case p.peek() == '>':
		r.op, p.pos = ">", p.pos+1
	case p.peek() == '<':
		r.op, p.pos = "<", p.pos+1
	default:
		p.pos = start
		return r, false, nil
	}
	r.fd = fd
	if fd < 0 {
		r.fd = 1
		if r.op == "<" {
			r.fd = 0
		}
	}
	p.skipSpace()
	if p.pos >= len(p.s) || isOp(p.peek()) {
		return r, false, p.errorf("%s needs a file name after it", r.op)
	}
	w, err := p.word()
	if err != nil {
		return r, false, err
	}
	r.target = w
	if r.op == ">&" {
		if s, ok := w.literal(); !ok || (s != "1" && s != "2") {
			return r, false, p.errorf(">& needs 1 or 2 after it")
		}
	}
	return r, true, nil
}

// literal returns the word's text if it has no expansions.
func (w word) literal() (string, bool) {
	var b strings.Builder
	for _, pt := range w {
		if pt.kind != lit {
			return "", false
		}
		b.WriteString(pt.text)
	}
	return b.String(), true
}

func (p *parser) word() (word, error) {
	var w word
	var buf strings.Builder
	flush := func(quoted bool) {
		if buf.Len() > 0 {
			w = append(w, part{kind: lit, text: buf.String(), quoted: quoted})
			buf.Reset()
		}
	}
	for p.pos < len(p.s) && !isOp(p.peek()) {
		c := p.peek()
		switch c {
		case '\\':
			p.pos++
			if p.pos >= len(p.s) || (p.s[p.pos] == '\n' && p.pos == len(p.s)-1) {
				return nil, fmt.Errorf("%w: \\ at the end of the line", ErrIncomplete)
			}
			if p.s[p.pos] == '\n' { // line continuation
				p.pos++
				continue
			}
			flush(false)
			buf.WriteByte(p.s[p.pos])
			p.pos++
			flush(true)
		case '\'':
			end := strings.IndexByte(p.s[p.pos+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("%w: unterminated '", ErrIncomplete)
			}
			flush(false)
			w = append(w, part{kind: lit, text: p.s[p.pos+1 : p.pos+1+end], quoted: true})
			p.pos += end + 2
		case '"':
			flush(false)
			parts, err := p.doubleQuoted()
			if err != nil {
				return nil, err
			}
			if len(parts) == 0 {
				parts = word{{kind: lit, quoted: true}} // "" is an empty word
			}
			w = append(w, parts...)
		case '$':
			pt, ok, err := p.expansion(false, &buf)
			if err != nil {
				return nil, err
			}
			if ok {
				flush(false)
				w = append(w, pt)
			}
		case '`':
			return nil, p.errorf("command substitution `…` is not supported")
		case '(', ')':
			return nil, p.errorf("subshells and functions ( ) are not supported")
		default:
			buf.WriteByte(c)
			p.pos++
		}
	}
	flush(false)
	return w, nil
}

// doubleQuoted parses "…" starting at the opening quote.
func (p *parser) doubleQuoted() (word, error) {
	p.pos++
	var w word
	var buf strings.Builder
	flush := func() {
		if buf.Len() > 0 {
			w = append(w, part{kind: lit, text: buf.String(), quoted: true})
			buf.Reset()
		}
	}
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == '"':
			p.pos++
			flush()
			return w, nil
		case c == '\\' && p.pos+1 < len(p.s) && strings.IndexByte("$`\"\\", p.s[p.pos+1]) >= 0:
			buf.WriteByte(p.s[p.pos+1])
			p.pos += 2
		case c == '$':
			pt, ok, err := p.expansion(true, &buf)
			if err != nil {
				return nil, err
			}
			if ok {
				flush()
				w = append(w, pt)
			}
		case c == '`':
			return nil, p.errorf("command substitution `…` is not supported")
		default:
			buf.WriteByte(c)
			p.pos++
		}
	}
	return nil, fmt.Errorf("%w: unterminated \"", ErrIncomplete)
}

// expansion handles the '$' at the current position: an expansion part
// (ok), or, for a '$' that starts nothing, the '$' added to text as it is.
func (p *parser) expansion(quoted bool, text *strings.Builder) (part, bool, error) {
	pt, ok, err := p.dollar(quoted)
	if err == nil && !ok {
		text.WriteByte('$')
		p.pos++
	}
	return pt, ok, err
}

// dollar parses $NAME, ${NAME}, $?, $$ (as text) or $((expr)) at the
// current '$'. ok is false for a '$' that starts nothing (a literal '$').
func (p *parser) dollar(quoted bool) (part, bool, error) {
	rest := p.s[p.pos+1:]
	switch {
	case strings.HasPrefix(rest, "(("):
		depth, i := 0, 2
		for ; i < len(rest); i++ {
			switch rest[i] {
			case '(':
				depth++
			case ')':
				if depth > 0 {
					depth--
					continue
				}
				if i+1 < len(rest) && rest[i+1] == ')' {
					p.pos += 1 + i + 2
					return part{kind: arith, text: rest[2:i], quoted: quoted}, true, nil
				}
				return part{}, false, p.errorf("$(( needs a matching ))")
			}
		}
		return part{}, false, fmt.Errorf("%w: $(( needs a matching ))", ErrIncomplete)
	case strings.HasPrefix(rest, "("):
		return part{}, false, p.errorf("command substitution $(…) is not supported")
	case strings.HasPrefix(rest, "{"):
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return part{}, false, fmt.Errorf("%w: ${ needs a matching }", ErrIncomplete)
		}
		name := rest[1:end]
		if !validName(name) && name != "?" {
			return part{}, false, p.errorf("bad parameter name ${%s}", name)
		}
		p.pos += 1 + end + 1
		return part{kind: param, text: name, quoted: quoted}, true, nil
	case strings.HasPrefix(rest, "?"):
		p.pos += 2
		return part{kind: param, text: "?", quoted: quoted}, true, nil
	}
	n := 0
	for n < len(rest) && isNameChar(rest[n], n == 0) {
		n++
	}
	if n == 0 {
		return part{}, false, nil
	}
	p.pos += 1 + n
	return part{kind: param, text: rest[:n], quoted: quoted}, true, nil
}

func isNameChar(c byte, first bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameChar(s[i], i == 0) {
			return false
		}
	}
	return true
}
