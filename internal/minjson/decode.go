// SPDX-License-Identifier: Apache-2.0

// Package minjson is the small JSON reader and writer of keel's init. It
// replaces encoding/json (and the reflection it brings) in the init's import
// graph, without changing any format keel reads or writes.
//
// Decode reads one JSON document into the same values encoding/json's
// Unmarshal gives for an *any; Root walks such a tree with typed accessors
// that name the field at fault; Writer builds JSON output that is byte for
// byte what encoding/json's Marshal and MarshalIndent produce for the same
// data.
package minjson

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays Decode accepts, the
// same limit as encoding/json, so that hostile input cannot exhaust the stack.
const MaxDepth = 10000

// SyntaxError is a document Decode rejects.
type SyntaxError struct {
	Offset int    // byte offset (from 0) in the input where the problem is
	Msg    string // what was expected there and what was found
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// Decode decodes the one JSON value in b (RFC 8259; whitespace around it is
// allowed, anything else after it is an error) into the types encoding/json
// gives an *any: map[string]any, []any, string, float64, bool and nil.
// Like encoding/json it replaces invalid UTF-8 and unpaired surrogate escapes
// in strings with U+FFFD, keeps the last of duplicate object keys, and
// rejects numbers beyond the range of a float64 and nesting deeper than
// MaxDepth. Errors are *SyntaxError.
func Decode(b []byte) (any, error) { return DecodeMax(b, 0) }

// DecodeMax is Decode of a document holding at most maxValues values
// (objects, arrays, strings, numbers, literals; 0: no limit): memory is
// then bounded by the count, not only by the input's size. Four MiB of
// "{}," are a million empty objects, about 150 MiB in maps; a LUKS2 header
// read by PID 1 on a small machine must not cost that.
func DecodeMax(b []byte, maxValues int) (any, error) {
	d := decoder{b: b, left: maxValues, limit: maxValues}
	d.space()
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.space()
	if d.i < len(d.b) {
		return nil, d.unexpected("end of input after the top-level value")
	}
	return v, nil
}

type decoder struct {
	b     []byte
	i     int // next byte to read
	depth int // objects and arrays open around i
	limit int // most values allowed, 0 for no limit
	left  int // values still allowed when limit > 0
}

func (d *decoder) errAt(off int, format string, args ...any) error {
	return &SyntaxError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// unexpected reports that the byte at d.i is not what was expected.
func (d *decoder) unexpected(expected string) error {
	return d.errAt(d.i, "expected %s, found %s", expected, d.found())
}

// found describes the byte at d.i.
func (d *decoder) found() string {
	if d.i >= len(d.b) {
		return "end of input"
	}
	c := d.b[d.i]
	if c > ' ' && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (d *decoder) is(c byte) bool { return d.i < len(d.b) && d.b[d.i] == c }

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	if d.i >= len(d.b) {
		return nil, d.unexpected("a value")
	}
	if d.limit > 0 {
		if d.left == 0 {
			return nil, d.errAt(d.i, "more than %d values", d.limit)
		}
		d.left--
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, d.unexpected("a value (object, array, string, number, true, false or null)")
}

func (d *decoder) literal(word string) error {
	for j := 0; j < len(word); j++ {
		if !d.is(word[j]) {
			return d.errAt(d.i, "expected %q to complete %s, found %s", word[j], word, d.found())
		}
		d.i++
	}
	return nil
}

// open enters an object or array at d.i.
func (d *decoder) open() error {
	if d.depth >= MaxDepth {
		return d.errAt(d.i, "nesting deeper than %d objects and arrays", MaxDepth)
	}
	d.depth++
	d.i++
	d.space()
	return nil
}

func (d *decoder) object() (any, error) {
	if err := d.open(); err != nil {
		return nil, err
	}
	m := make(map[string]any)
	if d.is('}') {
		d.i++
		d.depth--
		return m, nil
	}
	for {
		if !d.is('"') {
			return nil, d.unexpected("a string (an object key)")
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.space()
		if !d.is(':') {
			return nil, d.unexpected("':' after object key")
		}
		d.i++
		d.space()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		m[k] = v
		d.space()
		switch {
		case d.is(','):
			d.i++
			d.space()
		case d.is('}'):
			d.i++
			d.depth--
			return m, nil
		default:
			return nil, d.unexpected("',' or '}' after object member")
		}
	}
}

func (d *decoder) array() (any, error) {
	if err := d.open(); err != nil {
		return nil, err
	}
	a := make([]any, 0)
	if d.is(']') {
		d.i++
		d.depth--
		return a, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.space()
		switch {
		case d.is(','):
			d.i++
			d.space()
		case d.is(']'):
			d.i++
			d.depth--
			return a, nil
		default:
			return nil, d.unexpected("',' or ']' after array element")
		}
	}
}

func (d *decoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() (any, error) {
	start := d.i
	if d.is('-') {
		d.i++
	}
	switch {
	case d.is('0'):
		d.i++
	case !d.digits():
		return nil, d.unexpected("a digit in number")
	}
	if d.is('.') {
		d.i++
		if !d.digits() {
			return nil, d.unexpected("a digit after the decimal point")
		}
	}
	if d.is('e') || d.is('E') {
		d.i++
		if d.is('+') || d.is('-') {
			d.i++
		}
		if !d.digits() {
			return nil, d.unexpected("a digit in the exponent")
		}
	}
	lit := string(d.b[start:d.i])
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return nil, d.errAt(start, "number %s is out of the range of a float64", lit)
	}
	return f, nil
}

// str reads a string starting at its opening quote.
func (d *decoder) str() (string, error) {
	open := d.i
	d.i++
	start := d.i
	// Fast path: no escapes, no invalid UTF-8.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			s := string(d.b[start:d.i])
			d.i++
			return s, nil
		}
		if c == '\\' || c < ' ' {
			break
		}
		if c < utf8.RuneSelf {
			d.i++
			continue
		}
		r, size := utf8.DecodeRune(d.b[d.i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		d.i += size
	}
	buf := append([]byte(nil), d.b[start:d.i]...)
	for {
		if d.i >= len(d.b) {
			return "", d.errAt(d.i, "expected '\"' to end the string begun at byte %d, found end of input", open)
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(buf), nil
		case c < ' ':
			return "", d.errAt(d.i, "expected a character or escape in string, found control character 0x%02x (must be escaped)", c)
		case c == '\\':
			var err error
			if buf, err = d.escape(buf); err != nil {
				return "", err
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			d.i++
		default:
			// Invalid UTF-8 decodes as utf8.RuneError, one byte at a time,
			// as encoding/json does.
			r, size := utf8.DecodeRune(d.b[d.i:])
			buf = utf8.AppendRune(buf, r)
			d.i += size
		}
	}
}

// escape decodes the escape sequence at d.i (a backslash) onto buf.
func (d *decoder) escape(buf []byte) ([]byte, error) {
	d.i++
	if d.i >= len(d.b) {
		return buf, d.unexpected("an escape character after '\\'")
	}
	switch c := d.b[d.i]; c {
	case '"', '\\', '/':
		buf = append(buf, c)
	case 'b':
		buf = append(buf, '\b')
	case 'f':
		buf = append(buf, '\f')
	case 'n':
		buf = append(buf, '\n')
	case 'r':
		buf = append(buf, '\r')
	case 't':
		buf = append(buf, '\t')
	case 'u':
		r := hex4(d.b[d.i+1:])
		if r < 0 {
			d.i++
			for n := 0; n < 4 && d.i < len(d.b) && unhex(d.b[d.i]) >= 0; n++ {
				d.i++
			}
			return buf, d.unexpected("4 hex digits after \\u")
		}
		d.i += 5
		if r >= 0xd800 && r < 0xe000 {
			// A surrogate: valid only as a high one followed by an
			// escaped low one; anything else is U+FFFD.
			if r < 0xdc00 && d.i+6 <= len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
				if lo := hex4(d.b[d.i+2:]); lo >= 0xdc00 && lo < 0xe000 {
					d.i += 6
					return utf8.AppendRune(buf, 0x10000+(r-0xd800)<<10+(lo-0xdc00)), nil
				}
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(buf, r), nil
	default:
		return buf, d.unexpected(`an escape character (one of "\/bfnrtu) after '\'`)
	}
	d.i++
	return buf, nil
}

// hex4 is the value of the 4 hex digits at the start of b, -1 if there are not.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		h := unhex(c)
		if h < 0 {
			return -1
		}
		r = r<<4 | h
	}
	return r
}

func unhex(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}
