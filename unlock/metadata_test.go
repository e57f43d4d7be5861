// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keel-boot/keel/internal/minjson"
)

// jsonArea returns the JSON text of the primary header of img.
func jsonArea(img []byte) []byte {
	hdrSize := binary.BigEndian.Uint64(img[offHdrSize:])
	return []byte(cString(img[binHeaderSize:hdrSize]))
}

func TestNumbered(t *testing.T) {
	for _, tc := range []struct {
		js   string
		read func(n minjson.Node) []int
		ids  []int
		err  string
	}{
		{js: `{"s":{"1":{},"0":{},"10":{}}}`, ids: []int{0, 1, 10}},
		{js: `{"s":{}}`, ids: []int{}},
		{js: `{"s":{"-1":{}}}`, err: "s.-1: expected a number from 0 to 31 as the name"},
		{js: `{"s":{"0":{},"32":{}}}`, err: "s.32: expected a number from 0 to 31 as the name"},
		{js: `{"s":{"01":{}}}`, err: "s.01: expected a number from 0 to 31 as the name"},
		{js: `{"s":{"":{}}}`, err: `s."": expected a number from 0 to 31 as the name`},
		// A name read from the header is quoted and clipped: it reached
		// the console raw, its own lines and megabytes with it (found by a
		// hunting helper).
		{js: `{"s":{"x\nkeel: data partition unlocked\n` + strings.Repeat("A", 4096) + `":{}}}`,
			err: `s."x\nkeel: data partition unlocked\nAAAAAAAA"...: expected a number from 0 to 31 as the name`},
		{js: `{"s":[]}`, err: "s: expected an object, found array"},
		{js: `{}`, err: "s: missing, expected an object"},
		{js: `{"k":["1","0","31"]}`, read: func(n minjson.Node) []int { return numbers(n.Key("k"), 32) }, ids: []int{1, 0, 31}},
		{js: `{"k":[]}`, read: func(n minjson.Node) []int { return numbers(n.Key("k"), 32) }, ids: []int{}},
		{js: `{"k":["1","01"]}`, read: func(n minjson.Node) []int { return numbers(n.Key("k"), 32) }, err: `k.1: expected a number from 0 to 31 in a string, found "01"`},
		{js: `{"k":["32"]}`, read: func(n minjson.Node) []int { return numbers(n.Key("k"), 32) }, err: `k.0: expected a number from 0 to 31 in a string, found "32"`},
		{js: `{"k":["+1"]}`, read: func(n minjson.Node) []int { return numbers(n.Key("k"), 32) }, err: `k.0: expected a number from 0 to 31 in a string, found "+1"`},
		{js: `{"k":[1]}`, read: func(n minjson.Node) []int { return numbers(n.Key("k"), 32) }, err: `k.0: expected a string, found number`},
		{js: `{"k":"1"}`, read: func(n minjson.Node) []int { return numbers(n.Key("k"), 32) }, err: `k: expected an array, found string`},
		{js: `{"k":null}`, read: func(n minjson.Node) []int { return numbers(n.Key("k"), 32) }, err: `k: expected an array, found null`},
	} {
		v, err := minjson.Decode([]byte(tc.js))
		if err != nil {
			t.Fatal(err)
		}
		root := minjson.Root(v)
		var ids []int
		if tc.read != nil {
			ids = tc.read(root)
		} else {
			var nodes []minjson.Node
			ids, nodes = numbered(root.Key("s"), 32)
			for i, n := range nodes {
				if want := "s." + strconv.Itoa(ids[i]); n.Path() != want || !n.Present() {
					t.Errorf("%s: node %d at %q, want %q", tc.js, i, n.Path(), want)
				}
			}
		}
		if err := root.Err(); tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: err = %v, want %q", tc.js, err, tc.err)
			}
		} else if err != nil || !reflect.DeepEqual(ids, tc.ids) {
			t.Errorf("%s: %v, %v, want %v", tc.js, ids, err, tc.ids)
		}
	}
}

// TestMetadataOptional checks members that may be left out: when given,
// null too, they must be valid.
func TestMetadataOptional(t *testing.T) {
	const seg = `"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":512%s}}`
	const cfg = `"config":{"json_size":"12288","keyslots_size":"16744448"%s}`
	const slot = `"keyslots":{"0":{"type":"luks2","key_size":64%s,"kdf":{"type":"pbkdf2","hash":"sha256","iterations":1000,"salt":""},
		"af":{"type":"luks1","stripes":4000,"hash":"sha256"},"area":{"type":"raw","offset":"32768","size":"258048","encryption":"aes-xts-plain64","key_size":64}}}`
	doc := func(s, c, k string) []byte {
		return []byte(`{` + fmt.Sprintf(slot, k) + `,"digests":{},` + fmt.Sprintf(seg, s) + `,` + fmt.Sprintf(cfg, c) + `}`)
	}
	for _, tc := range []struct {
		seg, cfg, slot string
		err            string // of the header
		slotErr        string // of key slot 0
		slots          int
		flags          []string
	}{
		{slots: 1},
		{cfg: `,"flags":["allow-discards","no-read-workqueue","allow-discards","x"]`, slots: 1, flags: []string{"allow_discards", "no_read_workqueue"}},
		{cfg: `,"flags":null`, err: "config.flags: expected an array, found null"},
		{cfg: `,"flags":[null]`, err: "config.flags.0: expected a string, found null"},
		{cfg: `,"requirements":null`, err: "config.requirements: expected an object, found null"},
		{cfg: `,"requirements":{}`, slots: 1},
		{cfg: `,"requirements":{"mandatory":null}`, err: "config.requirements.mandatory: expected an array, found null"},
		{cfg: `,"requirements":{"mandatory":[]}`, slots: 1},
		{cfg: `,"requirements":{"mandatory":["a\u001b[2J","b","c","d","e","f"]}`, err: `config.requirements.mandatory: "a\x1b[2J", "b", "c", "d", and 2 more not supported`},
		{cfg: `,"requirements":{"mandatory":["x","online-reencrypt-v2"]}`, err: `config.requirements.mandatory: "x", "online-reencrypt-v2" not supported (a reencryption is in progress`},
		{seg: `,"integrity":null`, err: "segments.0.integrity: authenticated encryption (dm-integrity) is not supported"},
		{seg: `,"flags":null`, err: "segments.0.flags: expected an array, found null"},
		{seg: `,"flags":[]`, slots: 1},
		{seg: `,"flags":["in-reencryption"]`, err: `segments.0.flags: "in-reencryption": segments in a reencryption are not supported`},
		{slot: `,"priority":null`, slots: 1, slotErr: "keyslots.0.priority: expected an integer from 0 to 2, found null"},
		{slot: `,"priority":0`},
		{slot: `,"priority":2`, slots: 1},
		{slot: `,"priority":2.5`, slots: 1, slotErr: "keyslots.0.priority: expected an integer from 0 to 2, found 2.5"},
	} {
		js := doc(tc.seg, tc.cfg, tc.slot)
		m, err := parseMetadata(js, 16384)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", js, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", js, err)
			continue
		}
		if len(m.keyslots) != tc.slots || !slices.Equal(m.flags, tc.flags) {
			t.Errorf("%s: %d key slots, flags %q", js, len(m.keyslots), m.flags)
			continue
		}
		if tc.slots == 1 {
			if err := m.keyslots[0].err; tc.slotErr == "" && err != nil || tc.slotErr != "" && (err == nil || err.Error() != tc.slotErr) {
				t.Errorf("%s: key slot error %v, want %q", js, err, tc.slotErr)
			}
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

// TestMetadataValueLimit: a JSON area packed with values (a million empty
// objects fit in 4 MiB, some 150 MiB parsed) is refused while it is read,
// before the tree is built: PID 1 on a small machine must not run out of
// memory over a header anyone can write.
func TestMetadataValueLimit(t *testing.T) {
	js := `{"tokens":{"0":{"type":"junk","keyslots":[],"junk":[` + strings.Repeat("{},", 1<<20) + `{}]}}}`
	_, err := parseMetadata([]byte(js), 4<<20+16<<10)
	if err == nil || !strings.Contains(err.Error(), "more than 32768 values") {
		t.Errorf("parseMetadata of a million objects = %v, want the value limit", err)
	}
}
