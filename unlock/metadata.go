package unlock

import (
	"fmt"
	"slices"
	"strings"
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
// error in a key slot only makes that slot unusable.
func parseMetadata(js []byte, hdrSize uint64) (*metadata, error) {
	v, err := decodeJSON(js)
	if err != nil {
		return nil, err
	}
	root := node{path: "(JSON root)", v: v}
	if _, err := root.object(); err != nil {
		return nil, err
	}
	root.path = ""
	m := &metadata{}
	if err := m.parseConfig(root, hdrSize); err != nil {
		return nil, err
	}
	if err := m.parseSegments(root); err != nil {
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

func (m *metadata) parseConfig(root node, hdrSize uint64) error {
	c, err := root.get("config")
	if err != nil {
		return err
	}
	js, err := c.getUint64("json_size")
	if err != nil {
		return err
	}
	if js != hdrSize-binHeaderSize {
		return fmt.Errorf("config.json_size: %d, expected %d, the JSON area of this %d-byte header", js, hdrSize-binHeaderSize, hdrSize)
	}
	if m.keyslotsSize, err = c.getUint64("keyslots_size"); err != nil {
		return err
	}
	if m.keyslotsSize > maxKeyslotsSize {
		return fmt.Errorf("config.keyslots_size: %d bytes, expected at most %d", m.keyslotsSize, maxKeyslotsSize)
	}
	if f, ok, err := c.lookup("flags"); err != nil {
		return err
	} else if ok {
		flags, err := f.strings()
		if err != nil {
			return err
		}
		for _, name := range flags {
			if dm, ok := dmFlags[name]; ok && !slices.Contains(m.flags, dm) {
				m.flags = append(m.flags, dm)
			}
		}
	}
	req, ok, err := c.lookup("requirements")
	if err != nil || !ok {
		return err
	}
	mand, ok, err := req.lookup("mandatory")
	if err != nil || !ok {
		return err
	}
	names, err := mand.strings()
	if err != nil {
		return err
	}
	if len(names) > 0 {
		for i := range names {
			names[i] = clip(names[i])
		}
		hint := ""
		if slices.ContainsFunc(names, func(s string) bool { return strings.HasPrefix(s, "online-reencrypt") }) {
			hint = " (a reencryption is in progress: finish it with cryptsetup reencrypt first)"
		}
		return fmt.Errorf("config.requirements.mandatory: %s not supported%s", strings.Join(names, ", "), hint)
	}
	return nil
}

func (m *metadata) parseSegments(root node) error {
	segs, err := root.get("segments")
	if err != nil {
		return err
	}
	ids, nodes, err := segs.members(maxSegments)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return fmt.Errorf("segments: %d data segments, expected one (more only occur during a reencryption)", len(ids))
	}
	s, n := &m.segment, nodes[0]
	s.id = ids[0]
	typ, err := n.getString("type")
	if err != nil {
		return err
	}
	if typ != "crypt" {
		return fmt.Errorf("%s.type: %q segments are not supported, expected crypt", n.path, clip(typ))
	}
	if s.offset, err = n.getUint64("offset"); err != nil {
		return err
	}
	if s.offset%512 != 0 {
		return fmt.Errorf("%s.offset: %d is not a multiple of 512", n.path, s.offset)
	}
	sz, err := n.get("size")
	if err != nil {
		return err
	}
	if str, _ := sz.v.(string); str == "dynamic" {
		s.dynamic = true
	} else if s.size, err = n.getUint64("size"); err != nil {
		return fmt.Errorf("%w or \"dynamic\"", err)
	}
	if s.ivTweak, err = n.getUint64("iv_tweak"); err != nil {
		return err
	}
	if s.cipher, err = n.getString("encryption"); err != nil {
		return err
	}
	if err := checkCipherSpec(s.cipher); err != nil {
		return fmt.Errorf("%s.encryption: %w", n.path, err)
	}
	ss, err := n.getInt("sector_size", 512, 4096)
	if err != nil {
		return err
	}
	if ss&(ss-1) != 0 {
		return fmt.Errorf("%s.sector_size: %d, expected 512, 1024, 2048 or 4096", n.path, ss)
	}
	s.sectorSize = uint64(ss)
	if !s.dynamic && (s.size == 0 || s.size%s.sectorSize != 0) {
		return fmt.Errorf("%s.size: %d bytes, expected a non-zero multiple of the %d-byte sector", n.path, s.size, s.sectorSize)
	}
	if _, ok, err := n.lookup("integrity"); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%s.integrity: authenticated encryption (dm-integrity) is not supported", n.path)
	}
	if f, ok, err := n.lookup("flags"); err != nil {
		return err
	} else if ok {
		flags, err := f.strings()
		if err != nil {
			return err
		}
		if len(flags) > 0 {
			return fmt.Errorf("%s.flags: %q: segments in a reencryption are not supported", n.path, clip(strings.Join(flags, ",")))
		}
	}
	return nil
}

// checkCipherSpec accepts a dm-crypt cipher specification
// ("aes-xts-plain64", "capi:xts(aes)-plain64"): it goes into the table
// line as one word.
func checkCipherSpec(s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%q: expected a cipher specification of 1 to 128 characters", clip(s))
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-_:(),.", c)) {
			return fmt.Errorf("%q: character %q is not allowed in a cipher specification", clip(s), c)
		}
	}
	return nil
}

func (m *metadata) parseDigests(root node) error {
	ds, err := root.get("digests")
	if err != nil {
		return err
	}
	ids, nodes, err := ds.members(maxDigests)
	if err != nil {
		return err
	}
	for i, n := range nodes {
		d := digest{id: ids[i]}
		typ, err := n.getString("type")
		if err != nil {
			return err
		}
		if typ != "pbkdf2" {
			return fmt.Errorf("%s.type: %q digests are not supported, expected pbkdf2", n.path, clip(typ))
		}
		if d.keyslots, err = n.getNumbers("keyslots", maxKeyslots); err != nil {
			return err
		}
		if d.segments, err = n.getNumbers("segments", maxSegments); err != nil {
			return err
		}
		if d.hash, err = n.getString("hash"); err != nil {
			return err
		}
		if _, err := hashFunc(d.hash); err != nil {
			return fmt.Errorf("%s.hash: %w", n.path, err)
		}
		it, err := n.getInt("iterations", 1, 1<<31-1)
		if err != nil {
			return err
		}
		d.iterations = uint32(it)
		if d.salt, err = n.getBase64("salt"); err != nil {
			return err
		}
		if d.sum, err = n.getBase64("digest"); err != nil {
			return err
		}
		if len(d.sum) < 16 || len(d.sum) > 64 {
			return fmt.Errorf("%s.digest: %d bytes, expected 16 to 64", n.path, len(d.sum))
		}
		m.digests = append(m.digests, d)
	}
	return nil
}

func (m *metadata) parseKeyslots(root node, hdrSize uint64) error {
	ks, err := root.get("keyslots")
	if err != nil {
		return err
	}
	ids, nodes, err := ks.members(maxKeyslots)
	if err != nil {
		return err
	}
	for i, n := range nodes {
		k := &keyslot{id: ids[i], priority: 1}
		if _, err := n.object(); err != nil {
			return err
		}
		if p, ok, _ := n.lookup("priority"); ok {
			prio, err := p.integer(0, 2)
			if err != nil {
				k.err = err
			} else {
				k.priority = prio
			}
		}
		if k.err == nil {
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
	return nil
}

var errNotForUnlocking = fmt.Errorf("not a key slot for unlocking")

// parse reads key slot n.
func (k *keyslot) parse(n node, m *metadata, hdrSize uint64) error {
	typ, err := n.getString("type")
	if err != nil {
		return err
	}
	switch typ {
	case "luks2":
	case "reencrypt":
		return errNotForUnlocking
	default:
		return fmt.Errorf("%s.type: %q key slots are not supported, expected luks2", n.path, clip(typ))
	}
	ksz, err := n.getInt("key_size", 1, maxKeySize)
	if err != nil {
		return err
	}
	k.keySize = int(ksz)
	if err := k.parseArea(n, m, hdrSize); err != nil {
		return err
	}
	if err := k.parseKDF(n); err != nil {
		return err
	}
	af, err := n.get("af")
	if err != nil {
		return err
	}
	if typ, err := af.getString("type"); err != nil {
		return err
	} else if typ != "luks1" {
		return fmt.Errorf("%s.type: anti-forensic splitter %q is not supported, expected luks1", af.path, clip(typ))
	}
	st, err := af.getInt("stripes", 1, maxStripes)
	if err != nil {
		return err
	}
	k.af.stripes = int(st)
	if k.af.hash, err = af.getString("hash"); err != nil {
		return err
	}
	if _, err := hashFunc(k.af.hash); err != nil {
		return fmt.Errorf("%s.hash: %w", af.path, err)
	}
	if need := k.splitSize(); need > k.area.size {
		return fmt.Errorf("%s: %d stripes of the %d-byte key take %d bytes, more than the %d-byte area", n.path, k.af.stripes, k.keySize, need, k.area.size)
	}
	// The volume key must fit the segment's cipher where keel knows it.
	for _, d := range m.digests {
		if slices.Contains(d.keyslots, k.id) && slices.Contains(d.segments, m.segment.id) {
			if err := checkKeySize(m.segment.cipher, k.keySize); err != nil {
				return fmt.Errorf("%s.key_size: %w", n.path, err)
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

func (k *keyslot) parseArea(n node, m *metadata, hdrSize uint64) error {
	a, err := n.get("area")
	if err != nil {
		return err
	}
	typ, err := a.getString("type")
	if err != nil {
		return err
	}
	if typ != "raw" {
		return fmt.Errorf("%s.type: %q keyslot areas are not supported, expected raw", a.path, clip(typ))
	}
	if k.area.offset, err = a.getUint64("offset"); err != nil {
		return err
	}
	if k.area.size, err = a.getUint64("size"); err != nil {
		return err
	}
	// The area lies in the keyslots area, after both copies of the header.
	lo, hi := 2*hdrSize, 2*hdrSize+m.keyslotsSize
	if k.area.offset%512 != 0 || k.area.offset < lo || k.area.offset > hi || k.area.size > hi-k.area.offset {
		return fmt.Errorf("%s: %d bytes at byte %d, expected whole sectors within the keyslots area, bytes %d to %d", a.path, k.area.size, k.area.offset, lo, hi)
	}
	if k.area.cipher, err = a.getString("encryption"); err != nil {
		return err
	}
	if k.area.cipher != "aes-xts-plain64" {
		return fmt.Errorf("%s.encryption: cipher %q is not supported for keyslot areas, expected aes-xts-plain64", a.path, clip(k.area.cipher))
	}
	ksz, err := a.getInt("key_size", 1, maxKeySize)
	if err != nil {
		return err
	}
	k.area.keySize = int(ksz)
	if err := checkKeySize(k.area.cipher, k.area.keySize); err != nil {
		return fmt.Errorf("%s.key_size: %w", a.path, err)
	}
	return nil
}

// checkKeySize checks a key size in bytes against the cipher.
func checkKeySize(cipher string, size int) error {
	if cipher == "aes-xts-plain64" && size != 32 && size != 64 {
		return fmt.Errorf("%d bytes, expected 32 or 64 for %s", size, cipher)
	}
	return nil
}

func (k *keyslot) parseKDF(n node) error {
	f, err := n.get("kdf")
	if err != nil {
		return err
	}
	if k.kdf.typ, err = f.getString("type"); err != nil {
		return err
	}
	switch k.kdf.typ {
	case "pbkdf2":
		if k.kdf.hash, err = f.getString("hash"); err != nil {
			return err
		}
		if _, err := hashFunc(k.kdf.hash); err != nil {
			return fmt.Errorf("%s.hash: %w", f.path, err)
		}
		it, err := f.getInt("iterations", 1, 1<<31-1)
		if err != nil {
			return err
		}
		k.kdf.iterations = uint32(it)
	case "argon2i", "argon2id":
		t, err := f.getInt("time", 1, 1<<32-1)
		if err != nil {
			return err
		}
		cpus, err := f.getInt("cpus", 1, maxArgonCPUs)
		if err != nil {
			return err
		}
		mem, err := f.getInt("memory", minArgonMemory*cpus, maxArgonMemory)
		if err != nil {
			return err
		}
		if t*mem > maxArgonWork {
			return fmt.Errorf("%s: time %d × memory %d KiB is more than the %d KiB of work keel allows", f.path, t, mem, int64(maxArgonWork))
		}
		k.kdf.time, k.kdf.memory, k.kdf.cpus = uint32(t), uint32(mem), uint32(cpus)
	default:
		return fmt.Errorf("%s.type: KDF %q is not supported, expected pbkdf2, argon2i or argon2id", f.path, clip(k.kdf.typ))
	}
	k.kdf.salt, err = f.getBase64("salt")
	return err
}
