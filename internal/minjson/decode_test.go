// SPDX-License-Identifier: Apache-2.0

package minjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// decodeCases are documents encoding/json and Decode must agree on: both
// reject, or both accept with equal values.
var decodeCases = []string{
	// values
	`null`, `true`, `false`, `0`, `-0`, `1`, `-1`, `12345678901234567890`, `1.5`, `-0.25e+3`, `1E2`, `1e-400`,
	`1.7976931348623157e308`, `4.9e-324`, `""`, `"abc"`, `{}`, `[]`, `[1,"a",null,true,{"k":[]}]`,
	`{"a":1,"b":{"c":[1,2,{"d":null}]}}`, ` { "a" : [ 1 , 2 ] } `, "\t\r\n 1 \n",
	// escapes and UTF-8
	`"\"\\\/\b\f\n\r\t"`, `"\u0041\u00e9\u4e2d\uD83D\uDE00"`, `"\ud83d\ude00"`, `"\uD83D"`, `"\uDE00"`,
	`"\uD83Dx"`, `"\uD83D\u0041"`, `"\uDE00\uD83D"`, `"\uD83D\uD83D\uDE00"`, `"\uD83D\\"`, `"\uFFFD"`, `"\u0000"`,
	"\"\xff\"", "\"a\xc3\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"é中😀\"", "\"\x7f\"", "\"\xe2\x80\xa8\"",
	`"<>&"`,
	// duplicates: last wins
	`{"a":1,"a":2}`, `{"a":{"x":1},"a":{"y":2}}`,
	// invalid
	``, ` `, `nul`, `tru`, `falsey`, `nulll`, `+1`, `01`, `-`, `-a`, `1.`, `.5`, `1e`, `1e+`, `0x10`, `1_000`, `Infinity`, `NaN`,
	`1e400`, `-1e400`, `"abc`, `"\"`, `"\x"`, `"\u12"`, `"\u12G4"`, `"\'"`, "\"a\nb\"", "\"\x00\"", "\"\x1f\"",
	`{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{a:1}`, `{'a':1}`, `{"a":1 "b":2}`, `{1:2}`,
	`[`, `]`, `[1,]`, `[,1]`, `[1 2]`, `[1,,2]`, `[]]`, `{}}`, `1 2`, `"a" "b"`, `[] x`,
	"\xef\xbb\xbf1", "\x001", "1\x00", `/* c */ 1`, "\v1", "\f1", "\u00a01",
}

func sameAsEncodingJSON(t *testing.T, doc []byte) {
	t.Helper()
	var want any
	werr := json.Unmarshal(doc, &want)
	got, err := Decode(doc)
	if (err == nil) != (werr == nil) {
		t.Fatalf("Decode(%q): error %v, encoding/json: %v", doc, err, werr)
	}
	if err != nil {
		var se *SyntaxError
		if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(doc) {
			t.Fatalf("Decode(%q): error %v is not a *SyntaxError with an offset in the input", doc, err)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%q) = %#v, encoding/json: %#v", doc, got, want)
	}
}

func TestDecodeLikeEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		sameAsEncodingJSON(t, []byte(c))
	}
}

func TestDecodeDepth(t *testing.T) {
	for _, n := range []int{MaxDepth - 1, MaxDepth, MaxDepth + 1, 3 * MaxDepth} {
		arr := strings.Repeat("[", n) + strings.Repeat("]", n)
		sameAsEncodingJSON(t, []byte(arr))
		obj := strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
		sameAsEncodingJSON(t, []byte(obj))
		// unterminated: must fail, never blow the stack
		if _, err := Decode([]byte(strings.Repeat("[", n))); err == nil {
			t.Errorf("%d unclosed [ accepted", n)
		}
	}
	_, err := Decode([]byte(strings.Repeat("[", MaxDepth+1)))
	if err == nil || !strings.Contains(err.Error(), "nesting deeper than 10000") {
		t.Errorf("error %v, want one about nesting", err)
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, `invalid JSON at byte 0: expected a value, found end of input`},
		{`{"a" 1}`, `invalid JSON at byte 5: expected ':' after object key, found '1'`},
		{`{"a":1 x`, `invalid JSON at byte 7: expected ',' or '}' after object member, found 'x'`},
		{`[1,]`, `invalid JSON at byte 3: expected a value (object, array, string, number, true, false or null), found ']'`},
		{`{"a":1,}`, `invalid JSON at byte 7: expected a string (an object key), found '}'`},
		{`[1 2]`, `invalid JSON at byte 3: expected ',' or ']' after array element, found '2'`},
		{`1 2`, `invalid JSON at byte 2: expected end of input after the top-level value, found '2'`},
		{`tru`, `invalid JSON at byte 3: expected 'e' to complete true, found end of input`},
		{`"ab`, `invalid JSON at byte 3: expected '"' to end the string begun at byte 0, found end of input`},
		{"\"a\tb\"", `invalid JSON at byte 2: expected a character or escape in string, found control character 0x09 (must be escaped)`},
		{`"\x"`, `invalid JSON at byte 2: expected an escape character (one of "\/bfnrtu) after '\', found 'x'`},
		{`"\u12x4"`, `invalid JSON at byte 5: expected 4 hex digits after \u, found 'x'`},
		{`-x`, `invalid JSON at byte 1: expected a digit in number, found 'x'`},
		{`1.e5`, `invalid JSON at byte 2: expected a digit after the decimal point, found 'e'`},
		{`1e+`, `invalid JSON at byte 3: expected a digit in the exponent, found end of input`},
		{`[1e999]`, `invalid JSON at byte 1: number 1e999 is out of the range of a float64`},
		{"\xff", `invalid JSON at byte 0: expected a value (object, array, string, number, true, false or null), found byte 0xff`},
	} {
		_, err := Decode([]byte(c.in))
		if err == nil || err.Error() != c.want {
			t.Errorf("Decode(%q): error %v\nwant %s", c.in, err, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Add([]byte(`{"keyslots":{"0":{"type":"luks2","key_size":64,"kdf":{"type":"argon2id","time":4,"memory":1048576,"cpus":4,"salt":"c2FsdA=="}}},"config":{"json_size":"12288"}}`))
	f.Add([]byte(`{"version":1,"locked":true,"trusted_keys":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="],"modules":[{"name":"a","path":"/a.ko","deps":["b"]}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		sameAsEncodingJSON(t, doc)
	})
}

// TestDecodeMax: the value count is bounded, each value counted once
// (containers and what they hold), the limit exact; 0 is no limit.
func TestDecodeMax(t *testing.T) {
	doc := []byte(`{"a":[1,2,{}],"b":"x"}`) // object, array, 1, 2, {}, "x": 6 values
	if _, err := DecodeMax(doc, 6); err != nil {
		t.Errorf("DecodeMax(6) = %v", err)
	}
	_, err := DecodeMax(doc, 5)
	var se *SyntaxError
	if !errors.As(err, &se) || !strings.Contains(se.Msg, "more than 5 values") {
		t.Errorf("DecodeMax(5) = %v, want more than 5 values", err)
	}
	huge := []byte("[" + strings.Repeat("{},", 1<<18) + "{}]")
	if _, err := DecodeMax(huge, 1<<15); err == nil {
		t.Error("DecodeMax of 2^18 empty objects under a 2^15 limit: no error")
	}
	if _, err := DecodeMax(huge, 0); err != nil {
		t.Errorf("DecodeMax(0) = %v: no limit", err)
	}
}
