// SPDX-License-Identifier: Apache-2.0

package minjson

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Writer builds one JSON document in the exact bytes encoding/json's Marshal
// writes for the same data: strings escaped as it escapes them (HTML
// characters and U+2028/U+2029 too, invalid UTF-8 as \ufffd), numbers
// formatted as it formats a float64 or an int. Members come out in the order
// they are written; Marshal writes struct fields in declaration order and
// map keys sorted.
//
// Misuse (a member without a key, a value where a key belongs, unclosed or
// extra values) and unencodable numbers (NaN, ±Inf) are recorded as the
// Writer's error, reported by Bytes and Indented; the Writer never panics.
// The zero Writer is ready to use.
type Writer struct {
	b     []byte
	err   error
	open  []byte // '{' or '[' for each container open
	comma bool   // the next member or element needs a ',' before it
	key   bool   // inside an object, a key was written and awaits its value
	done  bool   // the top-level value is complete
}

func (w *Writer) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("json writer: "+format, args...)
	}
}

// beforeValue checks a value may come here and writes the comma before it.
func (w *Writer) beforeValue(what string) bool {
	if w.err != nil {
		return false
	}
	switch {
	case w.done:
		w.fail("%s after the top-level value", what)
		return false
	case len(w.open) > 0 && w.open[len(w.open)-1] == '{':
		if !w.key {
			w.fail("%s in an object without a key", what)
			return false
		}
		w.key = false
	case w.comma:
		w.b = append(w.b, ',')
	}
	return true
}

// afterValue notes a value was completed.
func (w *Writer) afterValue() {
	if len(w.open) == 0 {
		w.done = true
	}
	w.comma = true
}

// Key writes the name of the next object member.
func (w *Writer) Key(k string) {
	if w.err != nil {
		return
	}
	if len(w.open) == 0 || w.open[len(w.open)-1] != '{' || w.key {
		w.fail("key %q outside an object or in place of a value", k)
		return
	}
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.b = AppendString(w.b, k)
	w.b = append(w.b, ':')
	w.key = true
}

// BeginObject opens an object.
func (w *Writer) BeginObject() { w.begin('{') }

// BeginArray opens an array.
func (w *Writer) BeginArray() { w.begin('[') }

func (w *Writer) begin(c byte) {
	if !w.beforeValue(string(c)) {
		return
	}
	w.b = append(w.b, c)
	w.open = append(w.open, c)
	w.comma = false
}

// EndObject closes the innermost container, an object.
func (w *Writer) EndObject() { w.end('{', '}') }

// EndArray closes the innermost container, an array.
func (w *Writer) EndArray() { w.end('[', ']') }

func (w *Writer) end(open, c byte) {
	if w.err != nil {
		return
	}
	if len(w.open) == 0 || w.open[len(w.open)-1] != open || w.key {
		w.fail("%c does not close an open %c here", c, open)
		return
	}
	w.open = w.open[:len(w.open)-1]
	w.b = append(w.b, c)
	w.afterValue()
}

// String writes s as a JSON string.
func (w *Writer) String(s string) {
	if w.beforeValue("a string") {
		w.b = AppendString(w.b, s)
		w.afterValue()
	}
}

// Bool writes true or false.
func (w *Writer) Bool(b bool) {
	if w.beforeValue("a boolean") {
		w.b = strconv.AppendBool(w.b, b)
		w.afterValue()
	}
}

// Null writes null.
func (w *Writer) Null() {
	if w.beforeValue("null") {
		w.b = append(w.b, "null"...)
		w.afterValue()
	}
}

// Int writes an integer as encoding/json writes any Go integer type.
func (w *Writer) Int(i int64) {
	if w.beforeValue("a number") {
		w.b = strconv.AppendInt(w.b, i, 10)
		w.afterValue()
	}
}

// Float writes f as encoding/json writes a float64; NaN and ±Inf are errors,
// as they are for encoding/json.
func (w *Writer) Float(f float64) {
	if w.err != nil {
		return
	}
	b, err := AppendFloat(nil, f)
	if err != nil {
		w.fail("%v", err)
		return
	}
	if w.beforeValue("a number") {
		w.b = append(w.b, b...)
		w.afterValue()
	}
}

// Bytes is the document written, compact as from encoding/json's Marshal.
func (w *Writer) Bytes() ([]byte, error) {
	if w.err == nil && !w.done {
		w.fail("document incomplete (%d containers open, or nothing written)", len(w.open))
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}

// Indented is the document written, laid out as encoding/json's MarshalIndent
// lays it out with the same prefix and indent: every member and element on
// its own line, "key": value with one space, empty objects and arrays as {}
// and [], and no prefix before the first line.
func (w *Writer) Indented(prefix, indent string) ([]byte, error) {
	src, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	// src is well formed by construction, so only its punctuation outside
	// strings matters here.
	dst := make([]byte, 0, len(src)*2)
	depth := 0
	newline := func() {
		dst = append(dst, '\n')
		dst = append(dst, prefix...)
		for range depth {
			dst = append(dst, indent...)
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j, len(src)-1)
			dst = append(dst, src[i:j+1]...)
			i = j
		case '{', '[':
			dst = append(dst, c)
			if i+1 < len(src) && (src[i+1] == '}' || src[i+1] == ']') {
				dst = append(dst, src[i+1])
				i++
				continue
			}
			depth++
			newline()
		case '}', ']':
			depth--
			newline()
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			newline()
		case ':':
			dst = append(dst, ':', ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst, nil
}

// AppendString appends s as a JSON string, escaped as encoding/json escapes
// it: \" \\ \b \f \n \r \t, other control characters and < > & as \u00XX,
// U+2028 and U+2029 as \u2028 and \u2029, and each byte of invalid UTF-8 as
// \ufffd (so it decodes as U+FFFD, as encoding/json would decode it anyway).
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ErrUnsupportedFloat is the error for NaN and ±Inf, which JSON cannot hold.
var ErrUnsupportedFloat = errors.New("NaN and infinite numbers cannot be written in JSON")

// AppendFloat appends f as encoding/json writes a float64: like
// strconv's shortest 'f' format, or 'e' below 1e-6 or from 1e21 on, with
// exponents unpadded (1e-7, not 1e-07).
func AppendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("%w: %v", ErrUnsupportedFloat, f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}
