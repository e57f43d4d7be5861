// SPDX-License-Identifier: Apache-2.0

package minjson

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// writeAny writes a tree of Decode's types as encoding/json's Marshal does:
// map keys sorted.
func writeAny(w *Writer, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		w.BeginObject()
		for _, k := range keys {
			w.Key(k)
			writeAny(w, v[k])
		}
		w.EndObject()
	case []any:
		w.BeginArray()
		for _, e := range v {
			writeAny(w, e)
		}
		w.EndArray()
	case string:
		w.String(v)
	case float64:
		w.Float(v)
	case bool:
		w.Bool(v)
	case nil:
		w.Null()
	}
}

// sameBytesAsEncodingJSON checks the Writer's compact and indented forms of v
// are the bytes encoding/json makes, and decode back to v.
func sameBytesAsEncodingJSON(t *testing.T, v any) {
	t.Helper()
	var w Writer
	writeAny(&w, v)
	got, err := w.Bytes()
	want, werr := json.Marshal(v)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%#v: Writer error %v, encoding/json: %v", v, err, werr)
	}
	if err != nil {
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%#v:\nWriter        %s\nencoding/json %s", v, got, want)
	}
	gotI, err := w.Indented(">", "\t")
	if err != nil {
		t.Fatal(err)
	}
	wantI, err := json.MarshalIndent(v, ">", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotI, wantI) {
		t.Fatalf("%#v indented:\nWriter        %s\nencoding/json %s", v, gotI, wantI)
	}
	var back any
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("encoding/json cannot decode %s: %v", got, err)
	}
	if !reflect.DeepEqual(back, normalize(v)) {
		t.Fatalf("%s decodes to %#v, want %#v", got, back, normalize(v))
	}
}

// normalize is what v becomes after a JSON round trip: strings with invalid
// UTF-8 become valid, each bad byte a U+FFFD (as []rune makes it).
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[string([]rune(k))] = normalize(e)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = normalize(e)
		}
		return a
	case string:
		return string([]rune(v))
	}
	return v
}

var oddStrings = []string{
	"", "plain", `"quoted"`, `back\slash`, "line\nfeed", "\r\t\b\f", "\x00\x01\x1f\x7f", "<script>&amp;</script>",
	"\xff\xfe", "a\xc3", "\xed\xa0\x80", "é中😀", "\u2028\u2029", "\ufffd", "\\u0041", "'", "/", "end\\",
}

var oddFloats = []float64{
	0, math.Copysign(0, -1), 1, -1, 1.5, 0.1, 1e-6, 9.99e-7, 1e-7, 1.234e-300, 1e20, 1e21, 123456789e15, 1e300,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 1 << 53, 1<<53 + 1, 1.0 / 3, 12.345, 1000.5, -2.5e-9,
	math.NaN(), math.Inf(1), math.Inf(-1),
}

func TestWriterLikeEncodingJSON(t *testing.T) {
	for _, s := range oddStrings {
		sameBytesAsEncodingJSON(t, s)
		sameBytesAsEncodingJSON(t, map[string]any{s: s})
	}
	for _, f := range oddFloats {
		sameBytesAsEncodingJSON(t, f)
		sameBytesAsEncodingJSON(t, []any{f})
	}
	for _, v := range []any{
		nil, true, false, []any{}, map[string]any{}, []any{[]any{}, map[string]any{}},
		map[string]any{"b": []any{1.0, "x", nil, map[string]any{}}, "a": map[string]any{"c": []any{}}, "": false},
		[]any{[]any{[]any{1.0}}, map[string]any{"k": map[string]any{"l": "m"}}},
	} {
		sameBytesAsEncodingJSON(t, v)
	}
	// Int writes Go integers as encoding/json does.
	for _, i := range []int64{0, -1, 42, math.MaxInt64, math.MinInt64} {
		var w Writer
		w.Int(i)
		got, err := w.Bytes()
		want, _ := json.Marshal(i)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("Int(%d) = %s, %v; want %s", i, got, err, want)
		}
	}
}

func TestWriterMisuse(t *testing.T) {
	for _, c := range []struct {
		name  string
		write func(w *Writer)
		want  string
	}{
		{"nothing", func(w *Writer) {}, "document incomplete"},
		{"unclosed", func(w *Writer) { w.BeginArray() }, "document incomplete (1 containers open"},
		{"two values", func(w *Writer) { w.Bool(true); w.Null() }, "null after the top-level value"},
		{"no key", func(w *Writer) { w.BeginObject(); w.String("v") }, "a string in an object without a key"},
		{"key in array", func(w *Writer) { w.BeginArray(); w.Key("k") }, `key "k" outside an object`},
		{"two keys", func(w *Writer) { w.BeginObject(); w.Key("a"); w.Key("b") }, `key "b" outside an object or in place of a value`},
		{"dangling key", func(w *Writer) { w.BeginObject(); w.Key("a"); w.EndObject() }, "} does not close an open {"},
		{"crossed", func(w *Writer) { w.BeginObject(); w.EndArray() }, "] does not close an open ["},
		{"NaN", func(w *Writer) { w.BeginArray(); w.Float(math.NaN()); w.EndArray() }, "NaN and infinite numbers cannot be written in JSON: NaN"},
	} {
		var w Writer
		c.write(&w)
		if _, err := w.Bytes(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
		if _, err := w.Indented("", " "); err == nil {
			t.Errorf("%s: Indented succeeded", c.name)
		}
	}
}

// FuzzEncode writes every document encoding/json accepts back with the
// Writer, and a string and a number from the fuzzer: the bytes must be
// encoding/json's, and decode back to the same values.
func FuzzEncode(f *testing.F) {
	for i, s := range oddStrings {
		f.Add([]byte(`{"a":[1,"x",{}],"b":null}`), s, oddFloats[i%len(oddFloats)])
	}
	for _, c := range decodeCases {
		f.Add([]byte(c), c, 0.5)
	}
	f.Fuzz(func(t *testing.T, doc []byte, s string, x float64) {
		sameBytesAsEncodingJSON(t, s)
		sameBytesAsEncodingJSON(t, x)
		sameBytesAsEncodingJSON(t, map[string]any{s: []any{x, s}, "k": map[string]any{}})
		if v, err := Decode(doc); err == nil {
			sameBytesAsEncodingJSON(t, v)
		}
	})
}
