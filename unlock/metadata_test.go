package unlock

import (
	"encoding/binary"
	"strings"
	"testing"
)

// jsonArea returns the JSON text of the primary header of img.
func jsonArea(img []byte) []byte {
	hdrSize := binary.BigEndian.Uint64(img[offHdrSize:])
	return []byte(cString(img[binHeaderSize:hdrSize]))
}

func TestJSONTreeErrors(t *testing.T) {
	root := func(js string) node {
		v, err := decodeJSON([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return node{v: v}
	}
	for _, tc := range []struct {
		js  string
		get func(n node) error
		err string
	}{
		{js: `{"a":{"b":1}}`, get: func(n node) error { c, _ := n.get("a"); _, err := c.getString("b"); return err }, err: "a.b: expected a string, found the number 1"},
		{js: `{"a":{}}`, get: func(n node) error { c, _ := n.get("a"); _, err := c.getString("b"); return err }, err: "a.b: missing"},
		{js: `{"a":null}`, get: func(n node) error { c, _ := n.get("a"); _, err := c.getString("b"); return err }, err: "a: expected an object, found null"},
		{js: `{"n":1.5}`, get: func(n node) error { _, err := n.getInt("n", 0, 9); return err }, err: "n: expected a whole number from 0 to 9, found 1.5"},
		{js: `{"n":1e300}`, get: func(n node) error { _, err := n.getInt("n", 0, 9); return err }, err: "n: expected a whole number from 0 to 9, found 1e+300"},
		{js: `{"n":true}`, get: func(n node) error { _, err := n.getInt("n", 0, 9); return err }, err: "n: expected a number, found true"},
		{js: `{"u":"+5"}`, get: func(n node) error { _, err := n.getUint64("u"); return err }, err: `u: expected a decimal number in a string from 0 to 2^64-1, found "+5"`},
		{js: `{"u":""}`, get: func(n node) error { _, err := n.getUint64("u"); return err }, err: `u: expected a decimal number in a string from 0 to 2^64-1, found ""`},
		{js: `{"u":["1"]}`, get: func(n node) error { _, err := n.getUint64("u"); return err }, err: "u: expected a decimal number in a string, found an array"},
		{js: `{"s":"` + strings.Repeat("x", 101) + `"}`, get: func(n node) error { _, err := n.getBase64("s"); return err }, err: "s: expected a base64 string: "},
		{js: `{"k":["1","01"]}`, get: func(n node) error { _, err := n.getNumbers("k", 32); return err }, err: `k.1: expected a number from 0 to 31 in a string, found "01"`},
		{js: `{"k":"1"}`, get: func(n node) error { _, err := n.getNumbers("k", 32); return err }, err: `k: expected an array, found the string "1"`},
		{js: `{"f":["a",2]}`, get: func(n node) error { c, _ := n.get("f"); _, err := c.strings(); return err }, err: "f.1: expected a string, found the number 2"},
		{js: `{"-1":{}}`, get: func(n node) error { _, _, err := n.members(32); return err }, err: "-1: expected a number from 0 to 31 as the name"},
		{js: `{"1":{},"0":{},"10":{}}`, get: func(n node) error {
			ids, nodes, err := n.members(32)
			if err == nil && (len(ids) != 3 || ids[0] != 0 || ids[2] != 10 || nodes[2].path != "10") {
				t.Errorf("members %v", ids)
			}
			return err
		}},
	} {
		err := tc.get(root(tc.js))
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.js, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.js, err, tc.err)
		}
	}
}

// FuzzMetadata feeds JSON areas to the metadata walker and tries the key
// slots it accepts on a cryptsetup volume: whatever the JSON, the result
// is an error or a volume, never a panic. The seeds are the JSON areas
// of cryptsetup's volumes in testdata; with them the real key opens the
// volume, so the whole unlocking path is fuzzed.
func FuzzMetadata(f *testing.F) {
	img, key, _ := testVolume(f, "argon2id")
	pimg, _, _ := testVolume(f, "pbkdf2-sha512")
	f.Add(jsonArea(img))
	f.Add(jsonArea(pimg))
	f.Add([]byte(minimalJSON))
	f.Add([]byte(`{"keyslots":{"0":{"type":"luks2","key_size":32,"priority":2,"kdf":{"type":"argon2i","time":4,"memory":1e12,"cpus":1,"salt":""},
		"af":{"type":"luks1","stripes":0,"hash":"sha1"},"area":{"type":"raw","offset":"-1","size":"99999999999999999999","encryption":"aes-xts-plain64","key_size":64}}},
		"digests":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":1000,"salt":"","digest":"AAAAAAAAAAAAAAAAAAAAAA=="}},
		"segments":{"0":{"type":"crypt","offset":"32768","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512,"flags":[]}},
		"config":{"json_size":"12288","keyslots_size":"131072","flags":["allow-discards"],"requirements":{"mandatory":[]}}}`))
	dev := zeroPadded{img, int64(len(img))}
	f.Fuzz(func(t *testing.T, js []byte) {
		m, err := parseMetadata(js, 16384)
		if err != nil {
			return
		}
		if m.segment.sectorSize < 512 || m.segment.offset%512 != 0 {
			t.Fatalf("segment %+v", m.segment)
		}
		for _, k := range m.keyslots {
			if k.err == nil && (k.splitSize() > k.area.size || k.area.offset < 2*16384 || k.af.stripes < 1) {
				t.Fatalf("key slot %+v accepted", k)
			}
		}
		if !cheap(m) {
			return
		}
		h := &header{hdrSize: 16384, meta: m}
		for _, secret := range [][]byte{key, []byte("x")} {
			v, err := unlockVolume(dev, dev.size, h, Key{Secret: secret, Kind: KeyFile})
			if err == nil && (len(v.Key) == 0 || v.Offset+v.Size > uint64(dev.size)) {
				t.Fatalf("volume %+v", v)
			}
		}
	})
}
