// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keel-boot/keel/internal/minjson"
)

// Limits of the LUKS2 metadata keel accepts. cryptsetup writes at most 32
// key slots, one data segment outside reencryption, 4000 anti-forensic
// stripes and keyslot areas of at most 128 MiB.
const (
	maxKeyslots     = 32
	maxSegments     = 32
	maxDigests      = 32
	maxKeySize      = 512 // bytes
	maxStripes      = 1 << 16
	maxKeyslotsSize = 128 << 20

	// The JSON area may be 4 MiB; parsed, a million empty objects in it
	// would take some 150 MiB of PID 1's memory. cryptsetup's own
	// metadata, with 32 key slots and tokens of systemd-cryptenroll, is
	// a few thousand values.
	maxJSONValues = 1 << 15

	// Argon2: cryptsetup's limits are 4 GiB of memory and 4 threads;
	// time × memory is capped so that a hostile header cannot keep PID 1
	// busy for more than about an hour.
	maxArgonMemory = 4 << 20 // KiB
	maxArgonCPUs   = 255
	maxArgonWork   = 1 << 32 // KiB × passes
	minArgonMemory = 8       // KiB per thread, as Argon2 requires
)

// metadata is what keel takes from the LUKS2 JSON area.
type metadata struct {
	keyslots     []*keyslot // usable or not, in the order to try them
	digests      []digest
	segment      segment
	flags        []string // dm-crypt optional parameters from config.flags
	keyslotsSize uint64
}

// keyslot is one key slot. A slot keel cannot use has err set: other
// slots may still open the volume, and err says why this one did not.
type keyslot struct {
	id       int
	priority int64
	err      error

	keySize int // bytes of the volume key it holds
	area    struct {
		offset, size uint64
		cipher       string
		keySize      int
	}
	kdf struct {
		typ        string // pbkdf2, argon2i or argon2id
		hash       string // pbkdf2
		iterations uint32 // pbkdf2
		time       uint32 // argon2
		memory     uint32 // argon2, KiB
		cpus       uint32 // argon2
		salt       []byte
	}
	af struct {
		stripes int
		hash    string
	}
}

// digest verifies a volume key recovered from the key slots it names.
type digest struct {
	id         int
	keyslots   []int
	segments   []int
	hash       string
	iterations uint32
	salt, sum  []byte
}

// segment is the data segment.
type segment struct {
	id         int
	offset     uint64 // bytes
	size       uint64 // bytes; 0 with dynamic
	dynamic    bool   // to the end of the device
	ivTweak    uint64
	cipher     string // dm-crypt's cipher specification
	sectorSize uint64
}

// dmFlags maps the config.flags of LUKS2 to dm-crypt's optional
// parameters. Other flags do not concern dm-crypt and are ignored.
var dmFlags = map[string]string{
	"allow-discards":         "allow_discards",
	"same-cpu-crypt":         "same_cpu_crypt",
	"submit-from-crypt-cpus": "submit_from_crypt_cpus",
	"no-read-workqueue":      "no_read_workqueue",
	"no-write-workqueue":     "no_write_workqueue",
}

// parseMetadata reads the JSON area js of a header of hdrSize bytes.
// Errors in the segment, digests or config make the header invalid; an
// error in a key slot only makes that slot unusable. minjson rather than
// encoding/json keeps the init 0.25 MB smaller; it is differentially fuzzed
// against it.
func parseMetadata(js []byte, hdrSize uint64) (*metadata, error) {
	v, err := minjson.DecodeMax(js, maxJSONValues)
	if err != nil {
		return nil, err
	}
	root := minjson.Root(v)
	m := &metadata{}
	if err := m.parseConfig(root, hdrSize); err != nil {
		return nil, err
	}
	if err := m.parseSegments(root, hdrSize); err != nil {
		return nil, err
	}
	if err := m.parseDigests(root); err != nil {
		return nil, err
	}
	if err := m.parseKeyslots(root, hdrSize); err != nil {
		return nil, err
	}
	return m, nil
}

// The parsers below read a tree through minjson, which keeps the first
// problem met, with its path, and reads zero values from then on; checks of
// their own go through Failf, so the first problem in reading order is the
// one reported, as when returning at each.

func (m *metadata) parseConfig(root minjson.Node, hdrSize uint64) error {
	c := root.Key("config")
	jsn := c.Key("json_size")
	if js := jsn.DecUint64(); js != hdrSize-binHeaderSize {
		jsn.Failf("%d, expected %d, the JSON area of this %d-byte header", js, hdrSize-binHeaderSize, hdrSize)
	}
	ksn := c.Key("keyslots_size")
	if m.keyslotsSize = ksn.DecUint64(); m.keyslotsSize > maxKeyslotsSize {
		ksn.Failf("%d bytes, expected at most %d", m.keyslotsSize, maxKeyslotsSize)
	}
	// Members that may be left out must be valid when given, null too.
	if c.Has("flags") {
		for _, name := range c.Key("flags").Strings() {
			if dm, ok := dmFlags[name]; ok && !slices.Contains(m.flags, dm) {
				m.flags = append(m.flags, dm)
			}
		}
	}
	if !c.Has("requirements") || !c.Key("requirements").Has("mandatory") {
		return root.Err()
	}
	mand := c.Key("requirements").Key("mandatory")
	if names := mand.Strings(); len(names) > 0 {
		hint := ""
		if slices.ContainsFunc(names, func(s string) bool { return strings.HasPrefix(s, "online-reencrypt") }) {
			hint = " (a reencryption is in progress: finish it with cryptsetup reencrypt first)"
		}
		// Quoted, clipped, and at most a few: the header's words reach the
		// console (found by a hunting helper).
		const shown = 4
		quoted := make([]string, 0, shown+1)
		for _, n := range names[:min(len(names), shown)] {
			quoted = append(quoted, fmt.Sprintf("%q", clip(n)))
		}
		if len(names) > shown {
			quoted = append(quoted, fmt.Sprintf("and %d more", len(names)-shown))
		}
		mand.Failf("%s not supported%s", strings.Join(quoted, ", "), hint)
	}
	return root.Err()
}

func (m *metadata) parseSegments(root minjson.Node, hdrSize uint64) error {
	segs := root.Key("segments")
	ids, nodes := numbered(segs, maxSegments)
	if err := root.Err(); err != nil {
		return err
	}
	if len(ids) != 1 {
		return fmt.Errorf("segments: %d data segments, expected one (more only occur during a reencryption)", len(ids))
	}
	s, n := &m.segment, nodes[0]
	s.id = ids[0]
	tn := n.Key("type")
	if typ := tn.Str(); typ != "crypt" {
		tn.Failf("%q segments are not supported, expected crypt", clip(typ))
	}
	on := n.Key("offset")
	if s.offset = on.DecUint64(); s.offset%512 != 0 {
		on.Failf("%d is not a multiple of 512", s.offset)
	} else if lo := 2*hdrSize + m.keyslotsSize; s.offset < lo {
		// The data must not overlap the headers or the key slots' areas:
		// mapped over them, bytes anyone can write would be the volume.
		on.Failf("%d, expected at least %d: the data begin after both copies of the header and the keyslots area", s.offset, lo)
	}
	if err := root.Err(); err != nil {
		return err
	}
	sz := n.Key("size")
	if sz.Value() == "dynamic" {
		s.dynamic = true
	} else if s.size = sz.DecUint64(); root.Err() != nil {
		return fmt.Errorf("%w or \"dynamic\"", root.Err())
	}
	// The IV tweak must be 0, as luksFormat writes it: with the offset
	// moved D sectors on and the tweak set to D, each mapped sector is
	// another sector of the owner's own volume, decrypted with its own IV,
	// so the volume mounted would be whatever file a user wrote D sectors
	// in (docs/security.md). Other values only occur while a reencryption
	// moves the data, which keel refuses anyway.
	tw := n.Key("iv_tweak")
	if s.ivTweak = tw.DecUint64(); root.Err() == nil && s.ivTweak != 0 {
		tw.Failf("%d, expected 0 (a volume's IVs start at its first sector; a tweak would map other sectors of the volume, decrypted, in their place)", s.ivTweak)
	}
	en := n.Key("encryption")
	// Only the cipher keel knows the key size of and whose key the
	// passphrase stands for: the header is not authenticated by the
	// passphrase, so a header edited to cipher_null (or to a key count,
	// "cipher_null:128-ecb", that leaves each key empty) would map chosen
	// plaintext behind the owner's own passphrase (docs/security.md).
	if s.cipher = en.Str(); s.cipher != dataCipher {
		en.Failf("cipher %q is not supported for the data segment, expected %s (cryptsetup's LUKS2 default)", clip(s.cipher), dataCipher)
	}
	ssn := n.Key("sector_size")
	if ss := ssn.IntBetween(512, 4096); ss&(ss-1) != 0 {
		ssn.Failf("%d, expected 512, 1024, 2048 or 4096", ss)
	} else {
		s.sectorSize = uint64(ss)
	}
	if err := root.Err(); err != nil {
		return err
	}
	if !s.dynamic && (s.size == 0 || s.size%s.sectorSize != 0) {
		sz.Failf("%d bytes, expected a non-zero multiple of the %d-byte sector", s.size, s.sectorSize)
	}
	if n.Has("integrity") {
		n.Key("integrity").Failf("authenticated encryption (dm-integrity) is not supported")
	}
	if n.Has("flags") {
		fn := n.Key("flags")
		if flags := fn.Strings(); len(flags) > 0 {
			fn.Failf("%q: segments in a reencryption are not supported", clip(strings.Join(flags, ",")))
		}
	}
	return root.Err()
}

// numbered is the members of object n, which LUKS2 names by their numbers
// in decimal (key slots, segments, digests), in numeric order. A name that
// is not a number below limit is a problem.
func numbered(n minjson.Node, limit int) ([]int, []minjson.Node) {
	names := n.Keys()
	ids := make([]int, len(names))
	for i, name := range names {
		id, ok := number(name, limit)
		if !ok {
			n.Key(name).Failf("expected a number from 0 to %d as the name", limit-1)
			return nil, nil
		}
		ids[i] = id
	}
	slices.Sort(ids)
	nodes := make([]minjson.Node, len(ids))
	for i, id := range ids {
		nodes[i] = n.Key(strconv.Itoa(id))
	}
	return ids, nodes
}

// numbers is array n of key slot or segment numbers, each below limit and
// written in decimal in a string.
func numbers(n minjson.Node, limit int) []int {
	items := n.Items()
	ids := make([]int, len(items))
	for i, e := range items {
		s := e.Str()
		id, ok := number(s, limit)
		if !ok {
			e.Failf("expected a number from 0 to %d in a string, found %q", limit-1, clip(s))
			return nil
		}
		ids[i] = id
	}
	return ids
}

// number reads s, a number from 0 to limit-1 in decimal without leading
// zeros, as LUKS2 names its objects.
func number(s string, limit int) (int, bool) {
	id, err := strconv.Atoi(s)
	return id, err == nil && id >= 0 && id < limit && strconv.Itoa(id) == s
}

// clip shortens s for messages: headers are not to flood the console.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// dataCipher is the one cipher keel maps a LUKS2 data segment with.
const dataCipher = "aes-xts-plain64"

func (m *metadata) parseDigests(root minjson.Node) error {
	ids, nodes := numbered(root.Key("digests"), maxDigests)
	for i, n := range nodes {
		d := digest{id: ids[i]}
		tn := n.Key("type")
		if typ := tn.Str(); typ != "pbkdf2" {
			tn.Failf("%q digests are not supported, expected pbkdf2", clip(typ))
		}
		d.keyslots = numbers(n.Key("keyslots"), maxKeyslots)
		d.segments = numbers(n.Key("segments"), maxSegments)
		d.hash = checkHash(n.Key("hash"))
		d.iterations = uint32(n.Key("iterations").IntBetween(1, 1<<31-1))
		d.salt = n.Key("salt").Base64()
		dn := n.Key("digest")
		if d.sum = dn.Base64(); len(d.sum) < 16 || len(d.sum) > 64 {
			dn.Failf("%d bytes, expected 16 to 64", len(d.sum))
		}
		m.digests = append(m.digests, d)
	}
	return root.Err()
}

// checkHash reads string n, the name of a hash keel has.
func checkHash(n minjson.Node) string {
	name := n.Str()
	if _, err := hashFunc(name); err != nil {
		n.Failf("%v", err) // unless reading name failed: that is the problem
	}
	return name
}

func (m *metadata) parseKeyslots(root minjson.Node, hdrSize uint64) error {
	ids, nodes := numbered(root.Key("keyslots"), maxKeyslots)
	for i, n := range nodes {
		// A key slot that is not an object makes the header invalid; one
		// with a bad member is only unusable, its problems kept apart.
		hasPriority := n.Has("priority")
		if err := root.Err(); err != nil {
			return err
		}
		n = n.Detach()
		k := &keyslot{id: ids[i], priority: 1}
		if hasPriority {
			if p := n.Key("priority").IntBetween(0, 2); n.Err() == nil {
				k.priority = p
			}
		}
		if k.err = n.Err(); k.err == nil {
			k.err = k.parse(n, m, hdrSize)
		}
		if k.err == errNotForUnlocking || k.priority == 0 {
			// A reencryption slot, or one set to be ignored unless
			// asked for by number, as cryptsetup does.
			continue
		}
		m.keyslots = append(m.keyslots, k)
	}
	// Priority 2 (prefer) first, then 1 (normal); each by number.
	slices.SortStableFunc(m.keyslots, func(a, b *keyslot) int { return int(b.priority - a.priority) })
	return root.Err()
}

var errNotForUnlocking = fmt.Errorf("not a key slot for unlocking")

// parse reads key slot n, a Node in a walk of its own.
func (k *keyslot) parse(n minjson.Node, m *metadata, hdrSize uint64) error {
	tn := n.Key("type")
	switch typ := tn.Str(); typ {
	case "luks2":
	case "reencrypt":
		return errNotForUnlocking
	default:
		tn.Failf("%q key slots are not supported, expected luks2", clip(typ))
		return n.Err()
	}
	k.keySize = int(n.Key("key_size").IntBetween(1, maxKeySize))
	k.parseArea(n.Key("area"), m, hdrSize)
	k.parseKDF(n.Key("kdf"))
	af := n.Key("af")
	tn = af.Key("type")
	if typ := tn.Str(); typ != "luks1" {
		tn.Failf("anti-forensic splitter %q is not supported, expected luks1", clip(typ))
	}
	k.af.stripes = int(af.Key("stripes").IntBetween(1, maxStripes))
	k.af.hash = checkHash(af.Key("hash"))
	if err := n.Err(); err != nil {
		return err
	}
	if need := k.splitSize(); need > k.area.size {
		return fmt.Errorf("%s: %d stripes of the %d-byte key take %d bytes, more than the %d-byte area", n.Path(), k.af.stripes, k.keySize, need, k.area.size)
	}
	// The volume key must fit the segment's cipher where keel knows it.
	for _, d := range m.digests {
		if slices.Contains(d.keyslots, k.id) && slices.Contains(d.segments, m.segment.id) {
			if err := checkKeySize(m.segment.cipher, k.keySize); err != nil {
				return fmt.Errorf("%s.key_size: %w", n.Path(), err)
			}
		}
	}
	return nil
}

// splitSize is the size of the anti-forensic split key in the area,
// rounded up to whole 512-byte sectors as the area is encrypted.
func (k *keyslot) splitSize() uint64 {
	n := uint64(k.keySize) * uint64(k.af.stripes)
	return (n + 511) / 512 * 512
}

// parseArea reads a, the keyslot area of k.
func (k *keyslot) parseArea(a minjson.Node, m *metadata, hdrSize uint64) {
	tn := a.Key("type")
	if typ := tn.Str(); typ != "raw" {
		tn.Failf("%q keyslot areas are not supported, expected raw", clip(typ))
	}
	k.area.offset = a.Key("offset").DecUint64()
	k.area.size = a.Key("size").DecUint64()
	// The area lies in the keyslots area, after both copies of the header.
	lo, hi := 2*hdrSize, 2*hdrSize+m.keyslotsSize
	if k.area.offset%512 != 0 || k.area.offset < lo || k.area.offset > hi || k.area.size > hi-k.area.offset {
		a.Failf("%d bytes at byte %d, expected whole sectors within the keyslots area, bytes %d to %d", k.area.size, k.area.offset, lo, hi)
	}
	en := a.Key("encryption")
	if k.area.cipher = en.Str(); k.area.cipher != "aes-xts-plain64" {
		en.Failf("cipher %q is not supported for keyslot areas, expected aes-xts-plain64", clip(k.area.cipher))
	}
	kn := a.Key("key_size")
	k.area.keySize = int(kn.IntBetween(1, maxKeySize))
	if err := checkKeySize(k.area.cipher, k.area.keySize); err != nil {
		kn.Failf("%v", err)
	}
}

// checkKeySize checks a key size in bytes against the cipher.
func checkKeySize(cipher string, size int) error {
	if cipher == "aes-xts-plain64" && size != 32 && size != 64 {
		return fmt.Errorf("%d bytes, expected 32 or 64 for %s", size, cipher)
	}
	return nil
}

// parseKDF reads f, the key derivation of k.
func (k *keyslot) parseKDF(f minjson.Node) {
	tn := f.Key("type")
	switch k.kdf.typ = tn.Str(); k.kdf.typ {
	case "pbkdf2":
		k.kdf.hash = checkHash(f.Key("hash"))
		k.kdf.iterations = uint32(f.Key("iterations").IntBetween(1, 1<<31-1))
	case "argon2i", "argon2id":
		t := f.Key("time").IntBetween(1, 1<<32-1)
		cpus := f.Key("cpus").IntBetween(1, maxArgonCPUs)
		mem := f.Key("memory").IntBetween(minArgonMemory*cpus, maxArgonMemory)
		if t*mem > maxArgonWork {
			f.Failf("time %d × memory %d KiB is more than the %d KiB of work keel allows", t, mem, int64(maxArgonWork))
		}
		k.kdf.time, k.kdf.memory, k.kdf.cpus = uint32(t), uint32(mem), uint32(cpus)
	default:
		tn.Failf("KDF %q is not supported, expected pbkdf2, argon2i or argon2id", clip(k.kdf.typ))
	}
	k.kdf.salt = f.Key("salt").Base64()
}
