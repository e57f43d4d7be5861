// SPDX-License-Identifier: Apache-2.0

package minjson

import (
	"bytes"
	"encoding/base64"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func mustDecode(t *testing.T, doc string) Node {
	t.Helper()
	v, err := Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return Root(v)
}

const luksLike = `{
 "keyslots": {"0": {"type": "luks2", "key_size": 64, "priority": null,
   "kdf": {"type": "argon2id", "time": 4, "memory": 1048576, "cpus": 4, "salt": "c2FsdA=="}},
   "10": {"type": "luks2", "key_size": 32, "kdf": {"type": "pbkdf2", "iterations": 1000, "salt": 7}}},
 "segments": {"0": {"type": "crypt", "offset": "16777216", "size": "dynamic", "sector_size": 4096}},
 "digests": {"0": {"keyslots": ["0", "10"], "segments": ["0"]}},
 "config": {"json_size": "12288", "flags": []},
 "big": 9007199254740991, "bigger": 9007199254740992, "half": 1.5, "neg": -3, "yes": true
}`

func TestNodeReads(t *testing.T) {
	root := mustDecode(t, luksLike)
	ks := root.Key("keyslots")
	if got := ks.Keys(); !reflect.DeepEqual(got, []string{"0", "10"}) {
		t.Errorf("Keys = %q", got)
	}
	k0 := ks.Key("0")
	kdf := k0.Key("kdf")
	if got := kdf.Key("type").Str(); got != "argon2id" {
		t.Errorf("type %q", got)
	}
	if got := kdf.Key("memory").Int(); got != 1048576 {
		t.Errorf("memory %d", got)
	}
	if got := k0.Opt("priority").Int(); got != 0 || k0.Opt("priority").Present() {
		t.Errorf("null optional priority read as %d", got)
	}
	if got := k0.Opt("area").Opt("offset").Str(); got != "" {
		t.Errorf("missing optional object's member read as %q", got)
	}
	if got := root.Key("neg").Int(); got != -3 {
		t.Errorf("neg %d", got)
	}
	if got := root.Key("big").Int(); got != 1<<53-1 {
		t.Errorf("big %d", got)
	}
	if got := root.Key("half").Float(); got != 1.5 {
		t.Errorf("half %v", got)
	}
	if !root.Key("yes").Bool() {
		t.Error("yes is false")
	}
	var digestSlots []string
	for _, n := range root.Key("digests").Key("0").Key("keyslots").Items() {
		digestSlots = append(digestSlots, n.Str())
	}
	if !reflect.DeepEqual(digestSlots, []string{"0", "10"}) {
		t.Errorf("digest keyslots %q", digestSlots)
	}
	if items := root.Key("config").Key("flags").Items(); items == nil || len(items) != 0 {
		t.Errorf("[] gave %#v, want empty non-nil", items)
	}
	if items := root.Opt("nothing").Items(); items != nil {
		t.Errorf("missing optional array gave %#v", items)
	}
	if err := root.Err(); err != nil {
		t.Fatal(err)
	}
	// The first problem is kept; later ones and their zero values are quiet.
	if got := ks.Key("10").Key("kdf").Key("salt").Str(); got != "" {
		t.Errorf("number read as string %q", got)
	}
	if got := root.Key("missing").Str(); got != "" {
		t.Errorf("got %q after an error", got)
	}
	if err := root.Err(); err == nil || err.Error() != "keyslots.10.kdf.salt: expected a string, found number" {
		t.Errorf("error %v", err)
	}
}

func TestNodeErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		read func(root Node)
		want string
	}{
		{"missing", func(r Node) { r.Key("keyslots").Key("0").Key("area").Key("offset").Str() }, "keyslots.0.area: missing, expected an object"},
		{"missing leaf", func(r Node) { r.Key("config").Key("keyslots_size").Str() }, "config.keyslots_size: missing, expected a string"},
		{"null required", func(r Node) { r.Key("keyslots").Key("0").Key("priority").Int() }, "keyslots.0.priority: expected an integer, found null"},
		{"not object", func(r Node) { r.Key("config").Key("flags").Key("x").Str() }, "config.flags: expected an object, found array"},
		{"not array", func(r Node) { r.Key("config").Items() }, "config: expected an array, found object"},
		{"keys of array", func(r Node) { r.Key("config").Key("flags").Keys() }, "config.flags: expected an object, found array"},
		{"optional wrong type", func(r Node) { r.Opt("yes").Opt("x").Str() }, "yes: expected an object, found boolean"},
		{"fraction", func(r Node) { r.Key("half").Int() }, "half: expected an integer, found 1.5"},
		{"inexact", func(r Node) { r.Key("bigger").Int() }, "bigger: expected an integer of at most 9007199254740991 in magnitude, found 9.007199254740992e+15"},
		{"bool", func(r Node) { r.Key("neg").Bool() }, "neg: expected a boolean, found number"},
		{"float", func(r Node) { r.Key("yes").Float() }, "yes: expected a number, found boolean"},
		{"element", func(r Node) { r.Key("digests").Key("0").Key("segments").Items()[0].Int() }, "digests.0.segments.0: expected an integer, found string"},
		{"failf", func(r Node) { r.Key("segments").Key("0").Key("size").Failf("is %q, expected a number", "dynamic") }, `segments.0.size: is "dynamic", expected a number`},
	} {
		root := mustDecode(t, luksLike)
		c.read(root)
		if err := root.Err(); err == nil || err.Error() != c.want {
			t.Errorf("%s: error %v\nwant %s", c.name, err, c.want)
		}
	}
	top := mustDecode(t, `[1]`)
	top.Key("version").Int()
	if err := top.Err(); err == nil || err.Error() != "top level: expected an object, found array" {
		t.Errorf("top-level error %v", err)
	}
	null := mustDecode(t, `null`)
	null.Opt("version").Int()
	if err := null.Err(); err == nil || err.Error() != "top level: expected an object, found null" {
		t.Errorf("null document: error %v", err)
	}
}

func TestNodeHas(t *testing.T) {
	root := mustDecode(t, `{"a":null,"b":1,"o":{"x":[]}}`)
	for name, want := range map[string]bool{"a": true, "b": true, "o": true, "c": false, "": false} {
		if got := root.Has(name); got != want {
			t.Errorf("Has(%q) = %v", name, got)
		}
	}
	if !root.Key("o").Has("x") || root.Key("o").Has("y") || root.Opt("missing").Has("x") {
		t.Error("Has below the top")
	}
	if err := root.Err(); err != nil {
		t.Fatal(err)
	}
	// A member given as null is there, but Key reads it as a problem.
	if root.Has("a") && root.Key("a").Strings() != nil {
		t.Error("null read as an array")
	}
	if err := root.Err(); err == nil || err.Error() != "a: expected an array, found null" {
		t.Errorf("error %v", err)
	}
	for doc, want := range map[string]string{
		`{"o":[]}`:   "o: expected an object, found array",
		`{"o":null}`: "o: expected an object, found null",
		`{}`:         "o: missing, expected an object",
	} {
		root := mustDecode(t, doc)
		if root.Key("o").Has("x") {
			t.Errorf("%s: Has", doc)
		}
		if err := root.Err(); err == nil || err.Error() != want {
			t.Errorf("%s: error %v\nwant %s", doc, err, want)
		}
	}
}

func TestNodeDetach(t *testing.T) {
	root := mustDecode(t, luksLike)
	var bad, good Node
	for _, name := range root.Key("keyslots").Keys() {
		k := root.Key("keyslots").Key(name).Detach()
		k.Key("kdf").Key("salt").Str()
		if name == "0" {
			good = k
		} else {
			bad = k
		}
	}
	if err := good.Err(); err != nil {
		t.Errorf("good slot: %v", err)
	}
	if err := bad.Err(); err == nil || err.Error() != "keyslots.10.kdf.salt: expected a string, found number" {
		t.Errorf("bad slot: %v", err)
	}
	if err := root.Err(); err != nil {
		t.Errorf("the slot's problem reached the root: %v", err)
	}
	// A Node reached before its walk failed reads on once detached.
	k0 := root.Key("keyslots").Key("0")
	root.Key("missing").Str()
	if got := k0.Key("key_size").Int(); got != 0 {
		t.Errorf("read %d after a failure", got)
	}
	if got := k0.Detach().Key("key_size").Int(); got != 64 || root.Err() == nil {
		t.Errorf("detached after a failure read %d", got)
	}
}

func TestNodeIntBetween(t *testing.T) {
	root := mustDecode(t, `{"n":[0,1,-3,2.5,4096,1e3,9007199254740991,-9007199254740991,9007199254740992,1e300,"1",null,true]}`)
	items := root.Key("n").Items()
	for _, c := range []struct {
		i      int
		lo, hi int64
		want   int64
		err    string
	}{
		{i: 0, lo: 0, hi: 0, want: 0},
		{i: 1, lo: 0, hi: 2, want: 1},
		{i: 2, lo: -3, hi: -3, want: -3},
		{i: 2, lo: -2, hi: 2, err: "n.2: expected an integer from -2 to 2, found -3"},
		{i: 1, lo: 2, hi: 9, err: "n.1: expected an integer from 2 to 9, found 1"},
		{i: 3, lo: 0, hi: 9, err: "n.3: expected an integer from 0 to 9, found 2.5"},
		{i: 4, lo: 512, hi: 4096, want: 4096},
		{i: 4, lo: 512, hi: 4095, err: "n.4: expected an integer from 512 to 4095, found 4096"},
		{i: 5, lo: 1, hi: 1 << 31, want: 1000},
		{i: 6, lo: math.MinInt64, hi: math.MaxInt64, want: 1<<53 - 1},
		{i: 7, lo: math.MinInt64, hi: math.MaxInt64, want: -(1<<53 - 1)},
		{i: 8, lo: 0, hi: math.MaxInt64, err: "n.8: expected an integer from 0 to 9007199254740991, found 9.007199254740992e+15"},
		{i: 9, lo: 0, hi: 9, err: "n.9: expected an integer from 0 to 9, found 1e+300"},
		{i: 10, lo: 0, hi: 9, err: "n.10: expected an integer from 0 to 9, found string"},
		{i: 11, lo: 0, hi: 9, err: "n.11: expected an integer from 0 to 9, found null"},
		{i: 12, lo: 0, hi: 9, err: "n.12: expected an integer from 0 to 9, found boolean"},
	} {
		n := items[c.i].Detach()
		got := n.IntBetween(c.lo, c.hi)
		if err := n.Err(); c.err != "" {
			if err == nil || err.Error() != c.err || got != 0 {
				t.Errorf("%d in [%d, %d]: %d, %v\nwant error %s", c.i, c.lo, c.hi, got, err, c.err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("%d in [%d, %d]: %d, %v, want %d", c.i, c.lo, c.hi, got, err, c.want)
		}
	}
	if got := root.Opt("none").IntBetween(1, 2); got != 0 || root.Err() != nil {
		t.Errorf("missing optional: %d, %v", got, root.Err())
	}
	if root.Key("none").IntBetween(1, 2); root.Err() == nil || root.Err().Error() != "none: missing, expected an integer from 1 to 2" {
		t.Errorf("missing: %v", root.Err())
	}
}

func TestNodeDecUint64(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want uint64
		err  string
	}{
		{doc: `"0"`, want: 0},
		{doc: `"16384"`, want: 16384},
		{doc: `"0016384"`, want: 16384},
		{doc: `"18446744073709551615"`, want: math.MaxUint64},
		{doc: `"18446744073709551616"`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found "18446744073709551616"`},
		{doc: `""`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found ""`},
		{doc: `"+5"`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found "+5"`},
		{doc: `"-0"`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found "-0"`},
		{doc: `" 5"`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found " 5"`},
		{doc: `"1_000"`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found "1_000"`},
		{doc: `"0x10"`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found "0x10"`},
		{doc: `"1e3"`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found "1e3"`},
		{doc: `"` + strings.Repeat("9", 50) + `"`, err: `u: expected a decimal number in a string from 0 to 2^64-1, found "` + strings.Repeat("9", 40) + `..."`},
		{doc: `16384`, err: `u: expected a decimal number in a string, found number`},
		{doc: `["1"]`, err: `u: expected a decimal number in a string, found array`},
		{doc: `null`, err: `u: expected a decimal number in a string, found null`},
	} {
		root := mustDecode(t, `{"u":`+c.doc+`}`)
		got := root.Key("u").DecUint64()
		if err := root.Err(); c.err != "" {
			if err == nil || err.Error() != c.err || got != 0 {
				t.Errorf("%s: %d, %v\nwant error %s", c.doc, got, err, c.err)
			}
		} else if err != nil || got != c.want {
			t.Errorf("%s: %d, %v, want %d", c.doc, got, err, c.want)
		}
	}
}

func TestNodeBase64(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want []byte
		err  string
	}{
		{doc: `""`, want: []byte{}},
		{doc: `"c2FsdA=="`, want: []byte("salt")},
		{doc: `"AAAAAAAAAAAAAAAAAAAAAA=="`, want: make([]byte, 16)},
		{doc: `"+/8="`, want: []byte{0xfb, 0xff}},
		{doc: `"c2FsdA"`, err: "b: expected a base64 string: illegal base64 data at input byte 4"},
		{doc: `"-_8="`, err: "b: expected a base64 string: illegal base64 data at input byte 0"},
		{doc: `"` + strings.Repeat("x", 101) + `"`, err: "b: expected a base64 string: illegal base64 data at input byte 100"},
		{doc: `5`, err: "b: expected a base64 string, found number"},
		{doc: `null`, err: "b: expected a base64 string, found null"},
	} {
		root := mustDecode(t, `{"b":`+c.doc+`}`)
		got := root.Key("b").Base64()
		if err := root.Err(); c.err != "" {
			if err == nil || err.Error() != c.err || got != nil {
				t.Errorf("%s: %x, %v\nwant error %s", c.doc, got, err, c.err)
			}
		} else if err != nil || !bytes.Equal(got, c.want) || got == nil {
			t.Errorf("%s: %#v, %v, want %x", c.doc, got, err, c.want)
		}
	}
	root := mustDecode(t, `{}`)
	if got := root.Key("b").Base64(); got != nil || root.Err() == nil || root.Err().Error() != "b: missing, expected a base64 string" {
		t.Errorf("missing: %x, %v", got, root.Err())
	}
}

// FuzzNode walks any document with every reader: whatever the tree, a
// reader returns a value or records a problem with a path, never panics,
// and what it returns is what the document holds.
func FuzzNode(f *testing.F) {
	f.Add([]byte(luksLike), int64(0), int64(4096))
	f.Add([]byte(`{"a":["0016384","c2FsdA==","001=","c2Fs\r\ndA==",-1,2.5,null,{"b":[true]}]}`), int64(-1), int64(1<<53))
	f.Add([]byte(`[{"":{"":""}},"",0]`), int64(math.MinInt64), int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, doc []byte, lo, hi int64) {
		v, err := Decode(doc)
		if err != nil {
			return
		}
		var visit func(n Node, depth int)
		visit = func(n Node, depth int) {
			checkReaders(t, n, lo, hi)
			if depth > 8 {
				return
			}
			switch v := n.Value().(type) {
			case map[string]any:
				for _, k := range n.Keys() {
					if !n.Has(k) {
						t.Fatalf("%s: Has(%q) is false", n.Path(), k)
					}
					visit(n.Key(k), depth+1)
				}
				if len(n.Keys()) != len(v) {
					t.Fatalf("%s: %d keys of %d", n.Path(), len(n.Keys()), len(v))
				}
			case []any:
				items := n.Items()
				if len(items) != len(v) {
					t.Fatalf("%s: %d items of %d", n.Path(), len(items), len(v))
				}
				for _, e := range items {
					visit(e, depth+1)
				}
			}
		}
		visit(Root(v).Detach(), 0)
	})
}

// checkReaders reads n every way, each in a walk of its own.
func checkReaders(t *testing.T, n Node, lo, hi int64) {
	t.Helper()
	fails := func(read func(n Node)) error {
		d := n.Detach()
		read(d)
		err := d.Err()
		if where := n.Path(); err != nil && where != "" && !strings.HasPrefix(err.Error(), where+": ") && !strings.HasPrefix(err.Error(), where+".") {
			t.Fatalf("error %q is not at or below %q", err, where)
		}
		return err
	}
	var i int64
	if err := fails(func(n Node) { i = n.IntBetween(lo, hi) }); err == nil {
		f, ok := n.Value().(float64)
		if !ok || float64(i) != f || i < lo || i > hi || i < -maxExact || i > maxExact {
			t.Fatalf("%s: IntBetween(%d, %d) = %d from %v", n.Path(), lo, hi, i, n.Value())
		}
	} else if i != 0 {
		t.Fatalf("%s: IntBetween = %d with %v", n.Path(), i, err)
	}
	var u uint64
	if err := fails(func(n Node) { u = n.DecUint64() }); err == nil {
		s, _ := n.Value().(string)
		if trimmed := strings.TrimLeft(s, "0"); strconv.FormatUint(u, 10) != trimmed && !(u == 0 && trimmed == "" && s != "") {
			t.Fatalf("%s: DecUint64 = %d from %q", n.Path(), u, s)
		}
	}
	var b []byte
	if err := fails(func(n Node) { b = n.Base64() }); err == nil {
		// Std, not Strict: the unused low bits of the last character
		// may be set, as "001=" for "000=".
		s, _ := n.Value().(string)
		s = strings.NewReplacer("\r", "", "\n", "").Replace(s)
		e := base64.StdEncoding.EncodeToString(b)
		last := len(strings.TrimRight(e, "=")) - 1
		if len(e) != len(s) || last >= 0 && (e[:last] != s[:last] || e[last+1:] != s[last+1:]) {
			t.Fatalf("%s: Base64 = %x from %q", n.Path(), b, s)
		}
	}
	fails(func(n Node) { n.Str() })
	fails(func(n Node) { n.Int() })
	fails(func(n Node) { n.Bool() })
	fails(func(n Node) { n.Float() })
	fails(func(n Node) { n.Strings() })
	fails(func(n Node) { n.Has("x") })
	fails(func(n Node) { n.Key("x").Opt("y").Str() })
}

// TestPathName: a member's name shows in a path as it is when it is a
// short plain word, else quoted and clipped, so a name read from the
// input cannot bring its own lines, escape sequences or megabytes into an
// error message.
func TestPathName(t *testing.T) {
	for name, want := range map[string]string{
		"keyslots":                       "keyslots",
		"0":                              "0",
		"key_size":                       "key_size",
		"":                               `""`,
		"a.b":                            `"a.b"`,
		"x\nkeel: ok":                    `"x\nkeel: ok"`,
		"\x1b[2J":                        `"\x1b[2J"`,
		"é":                              `"é"`,
		strings.Repeat("A", 40):          strings.Repeat("A", 40),
		strings.Repeat("A", 41):          `"` + strings.Repeat("A", 40) + `"...`,
		"\xff" + strings.Repeat("A", 40): `"` + strings.Repeat("A", 39) + `"...`,
	} {
		if got := pathName(name); got != want {
			t.Errorf("pathName(%q) = %s, want %s", name, got, want)
		}
	}
	root := Root(map[string]any{"keyslots": map[string]any{"x\ny": 1.0}})
	root.Key("keyslots").Key("x\ny").Failf("bad")
	if err := root.Err(); err == nil || err.Error() != `keyslots."x\ny": bad` {
		t.Errorf("err = %v", err)
	}
}
