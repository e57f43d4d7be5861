// SPDX-License-Identifier: Apache-2.0

// Package jsontest helps tests compare readers built on minjson with
// encoding/json. Only tests import it.
package jsontest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// PlainKeys tells whether every object key in doc is made of [a-z0-9_] and
// no object repeats a key: the documents where encoding/json's
// case-insensitive matching of struct fields and its merging of repeated
// members cannot make it read differently from a minjson reader, which
// matches names exactly and keeps the last of repeated members. Documents
// encoding/json cannot tokenise count as plain.
func PlainKeys(doc []byte) bool {
	d := json.NewDecoder(bytes.NewReader(doc))
	type level struct {
		object, wantKey bool
		seen            map[string]bool
	}
	var stack []*level
	for {
		tok, err := d.Token()
		if err != nil {
			return true
		}
		if len(stack) > 0 {
			top := stack[len(stack)-1]
			if s, ok := tok.(string); ok && top.object && top.wantKey {
				if top.seen[s] || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
					return false
				}
				top.seen[s] = true
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &level{object: true, wantKey: true, seen: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, &level{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// a value ended: in an object, a key comes next
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = true
		}
	}
}

// ReadsSame checks that encoding/json reads doc into a value equal to got,
// which a minjson reader made of doc. Documents where the readings may
// legitimately differ are skipped: keys that are not PlainKeys, and numbers
// encoding/json refuses for an integer field (1.0, 1e0) that minjson takes.
// It reports whether doc was compared.
func ReadsSame[T any](t testing.TB, doc []byte, got *T) bool {
	t.Helper()
	if !PlainKeys(doc) {
		return false
	}
	var want T
	if err := json.Unmarshal(doc, &want); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && strings.HasPrefix(te.Value, "number ") {
			return false
		}
		t.Fatalf("accepted %q, encoding/json: %v", doc, err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("read %q\nas %#v\nencoding/json: %#v", doc, *got, want)
	}
	return true
}

// Fill sets every field reachable from ptr (a pointer to a struct) to a
// value that is not its zero value: strings "x", numbers 3, booleans true,
// pointers to filled values, slices and maps of one filled element, and a
// []byte to 32 bytes of 1 (an ed25519-sized key). Tests of a hand-written
// codec marshal the result and compare it with encoding/json's, so that a
// field added to a type but not to its codec fails there instead of being
// dropped without a word; a kind it cannot fill fails t.
func Fill(t testing.TB, ptr any) {
	t.Helper()
	fill(t, reflect.ValueOf(ptr).Elem())
}

func fill(t testing.TB, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() { // encoding/json sees no other
				fill(t, v.Field(i))
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(3)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem())
		v.Set(p)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes(bytes.Repeat([]byte{1}, 32))
			return
		}
		e := reflect.New(v.Type().Elem()).Elem()
		fill(t, e)
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, 1), e))
	case reflect.Map:
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k)
		fill(t, e)
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		t.Fatalf("jsontest.Fill: a field of kind %s: teach Fill to set it", v.Kind())
	}
}
