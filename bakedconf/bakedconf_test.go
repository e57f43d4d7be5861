// SPDX-License-Identifier: Apache-2.0

package bakedconf

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/keel-boot/keel/internal/minjson/jsontest"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

var configs = []Config{
	{},
	{Locked: true},
	{Cmdline: `quiet root="x y" <&>`, Shell: "/bin/sh", LUKSKeyfile: "/etc/keel/data.key", Kver: "6.1.0-27-amd64"},
	{TrustedKeys: [][]byte{key(0), key(0xff), key('>')}},
	{TrustedKeys: [][]byte{}, Modules: []Module{}},
	{TrustedKeys: [][]byte{nil, {}, {1, 2, 3}}},
	{Modules: []Module{
		{Name: "dm_mod", Path: "/lib/modules/dm-mod.ko"},
		{Name: "dm_verity", Path: "/lib/modules/dm-verity.ko", Deps: []string{"dm_mod", "dm_bufio"}},
		{Name: "", Path: "", Deps: []string{}},
		{Name: "odd\n\"\\\x00\x7f\xff\u2028é", Path: "\t", Deps: []string{""}},
	}},
	{Locked: true, Cmdline: "a", Shell: "b", TrustedKeys: [][]byte{key(7)}, Modules: []Module{{Name: "m", Path: "/m.ko"}}, LUKSKeyfile: "k", Kver: "v"},
	{DataMustBeEncrypted: true},
	{Locked: true, LUKSKeyfile: "k", DataMustBeEncrypted: true, Kver: "v"},
	{MaxUnconfirmed: 5},
}

func TestMarshalLikeEncodingJSON(t *testing.T) {
	for _, c := range configs {
		marshalLikeEncodingJSON(t, c)
	}
}

// marshalLikeEncodingJSON checks that Marshal writes c as encoding/json's
// MarshalIndent does, and returns the bytes.
func marshalLikeEncodingJSON(t *testing.T, c Config) []byte {
	t.Helper()
	got, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if want = append(want, '\n'); !bytes.Equal(got, want) {
		t.Errorf("Marshal:\n%s\nencoding/json:\n%s", got, want)
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	for _, c := range configs {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var want Config
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b)
		badKey := false
		for _, k := range c.TrustedKeys {
			badKey = badKey || len(k) != 32
		}
		if badKey {
			// encoding/json reads a null key as empty; Parse rejects it
			// earlier, as not a string.
			if err == nil || !strings.Contains(err.Error(), "trusted") {
				t.Errorf("Parse(%s): error %v, want one about a trusted key", b, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%s): %v", b, err)
			continue
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("Parse(%s)\n= %#v\nencoding/json: %#v", b, *got, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "baked config: invalid JSON at byte 0: expected a value, found end of input"},
		{`{"version":1,}`, "baked config: invalid JSON at byte 13: expected a string (an object key), found '}'"},
		{`[]`, "baked config: top level: expected an object, found array"},
		{`{}`, "baked config: version 0, expected 1"},
		{`{"version":2}`, "baked config: version 2, expected 1"},
		{`{"version":"1"}`, "baked config: version: expected an integer, found string"},
		{`{"version":1.5}`, "baked config: version: expected an integer, found 1.5"},
		{`{"version":1,"locked":"yes"}`, "baked config: locked: expected a boolean, found string"},
		{`{"version":1,"cmdline":["a"]}`, "baked config: cmdline: expected a string, found array"},
		{`{"version":1,"trusted_keys":"AAAA"}`, "baked config: trusted_keys: expected an array, found string"},
		{`{"version":1,"trusted_keys":[5]}`, "baked config: trusted_keys.0: expected a string, found number"},
		{`{"version":1,"trusted_keys":["!!!!"]}`, "baked config: trusted_keys.0: expected standard base64, illegal base64 data at input byte 0"},
		{`{"version":1,"trusted_keys":["AAAA"]}`, "baked config: trusted key 0 is 3 bytes, expected 32 (ed25519)"},
		{`{"version":1,"modules":[{"name":"a","path":"/a.ko","deps":"b"}]}`, "baked config: modules.0.deps: expected an array, found string"},
		{`{"version":1,"modules":[{"name":"a"},{"name":"b","deps":["a",null]}]}`, "baked config: modules.1.deps.1: expected a string, found null"},
		{`{"version":1,"modules":[7]}`, "baked config: modules.0: expected an object, found number"},
	} {
		_, err := Parse([]byte(c.in))
		if err == nil || err.Error() != c.want {
			t.Errorf("Parse(%s): error %v\nwant %s", c.in, err, c.want)
		}
	}
}

func TestParseLenient(t *testing.T) {
	// Unknown members are ignored and null reads as zero, as with encoding/json.
	c, err := Parse([]byte(`{"version":1,"future":{"x":[1]},"cmdline":null,"modules":[{"name":"a","path":"/a","deps":null,"x":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Version: 1, Modules: []Module{{Name: "a", Path: "/a"}}}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("got %#v", *c)
	}
}

// FuzzParse checks Parse never panics, and that what it accepts encoding/json
// reads the same, except where encoding/json is stricter about numbers (it
// rejects 1.0 or 1e0 for an int) or jsontest.PlainKeys says the readings may differ.
func FuzzParse(f *testing.F) {
	for _, c := range configs {
		b, _ := c.Marshal()
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"trusted_keys":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="],"modules":[{"name":"a","path":"/a.ko","deps":["b"]}]}`))
	f.Add([]byte(`{"version":1.0,"Version":2,"locked":null,"modules":[{"name":"x"}],"modules":[{"path":"y"}]}`))
	f.Add([]byte(`{"version":1,"trusted_keys":[null,"AA==\n"]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := Parse(doc)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "baked config: ") {
				t.Fatalf("error %q lacks the baked config prefix", err)
			}
			return
		}
		if !jsontest.ReadsSame(t, doc, got) {
			return
		}
		// What Parse read, Marshal writes back to be read the same (empty
		// lists aside, which it omits).
		b, err := got.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("re-Parse of %s: %v", b, err)
		}
		b2, err := again.Marshal()
		if err != nil || !bytes.Equal(b2, b) {
			t.Fatalf("Marshal, Parse, Marshal: %s then %s (%v)", b, b2, err)
		}
	})
}

// TestMarshalEveryField sets every field of Config and Module, found by
// reflection, so that a field added to the types but not to the
// hand-written Marshal and Parse fails here instead of being dropped from
// every image without a word (the configs above only carry the fields that
// existed when they were written).
func TestMarshalEveryField(t *testing.T) {
	var c Config
	jsontest.Fill(t, &c)
	c.Version = Version
	got := marshalLikeEncodingJSON(t, c)
	var back Config
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	p, err := Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*p, back) {
		t.Errorf("Parse(%s)\n= %#v\nencoding/json: %#v", got, *p, back)
	}
}
