package minjson

import (
	"reflect"
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
