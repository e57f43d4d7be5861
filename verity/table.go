// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// DefaultOptions are the dm-verity optional arguments used when a Target has
// none: a corrupt block reboots the machine rather than feeding bad data on.
func DefaultOptions() []string { return []string{"restart_on_corruption"} }

// Target is one dm-verity device to create.
type Target struct {
	Name       string // dm name, e.g. "keel-root-a"
	DataDev    string // /dev/... of the data (squashfs) device
	HashDev    string // /dev/... of the hash device
	HashOffset uint64 // byte offset of the veritysetup superblock inside HashDev
	Params     Params
	RootHash   []byte
	Options    []string // dm-verity optional args, each may hold its own arguments ("fec_roots 2"); nil means DefaultOptions
}

// table is the verity target line split into its fields.
type table struct {
	dataDev, hashDev string
	dbs, hbs         uint32
	dataBlocks       uint64
	hashStart        uint64 // in hash blocks
	alg, root, salt  string
	opts             []string // the optional args, count first; empty when none
}

// Table is the dm table params line of the verity target:
// "1 <data> <hash> <dbs> <hbs> <nblocks> <hash_start_block> <alg> <roothex> <salthex|-> [<n> <opts...>]".
func (t Target) Table() (string, error) {
	tb, err := t.table()
	if err != nil {
		return "", err
	}
	f := []string{"1", tb.dataDev, tb.hashDev,
		strconv.FormatUint(uint64(tb.dbs), 10), strconv.FormatUint(uint64(tb.hbs), 10),
		strconv.FormatUint(tb.dataBlocks, 10), strconv.FormatUint(tb.hashStart, 10),
		tb.alg, tb.root, tb.salt}
	return strings.Join(append(f, tb.opts...), " "), nil
}

// Size is the length of the verity device in bytes.
func (t Target) Size() uint64 {
	p := t.Params.WithDefaults()
	return p.DataBlocks * uint64(p.DataBlockSize)
}

func (t Target) table() (table, error) {
	p := t.Params.WithDefaults()
	if err := p.Validate(); err != nil {
		return table{}, fmt.Errorf("dm-verity %s: %w", t.Name, err)
	}
	if err := t.checkDevices(p); err != nil {
		return table{}, err
	}
	if want := p.DigestSize(); len(t.RootHash) != want {
		return table{}, fmt.Errorf("dm-verity %s: root hash is %d bytes, want %d for %s", t.Name, len(t.RootHash), want, p.HashAlg)
	}
	opts, err := t.options()
	if err != nil {
		return table{}, err
	}
	return table{
		dataDev: t.DataDev, hashDev: t.HashDev,
		dbs: p.DataBlockSize, hbs: p.HashBlockSize, dataBlocks: p.DataBlocks,
		hashStart: hashStartBlock(t.HashOffset, p.HashBlockSize),
		alg:       p.HashAlg, root: hex.EncodeToString(t.RootHash), salt: hexOrDash(p.Salt),
		opts: opts,
	}, nil
}

// hashStartBlock is where the tree starts, in hash blocks: after the
// superblock, rounded up to a block (cryptsetup VERITY_hash_offset_block).
func hashStartBlock(offset uint64, hbs uint32) uint64 {
	return (offset + superblockSize + uint64(hbs) - 1) / uint64(hbs)
}

func (t Target) checkDevices(p Params) error {
	for _, d := range []struct{ what, path string }{{"data device", t.DataDev}, {"hash device", t.HashDev}} {
		if d.path == "" || strings.ContainsFunc(d.path, isSpace) {
			return fmt.Errorf("dm-verity %s: %s %q is empty or has white space", t.Name, d.what, d.path)
		}
	}
	if t.HashOffset%uint64(p.HashBlockSize) != 0 {
		return fmt.Errorf("dm-verity %s: hash offset %d is not a multiple of the hash block size %d", t.Name, t.HashOffset, p.HashBlockSize)
	}
	return nil
}

// options counts the words of the optional arguments, as the kernel wants.
func (t Target) options() ([]string, error) {
	opts := t.Options
	if opts == nil {
		opts = DefaultOptions()
	}
	var words []string
	for _, o := range opts {
		f := strings.Fields(o)
		if len(f) == 0 {
			return nil, fmt.Errorf("dm-verity %s: empty option in %q", t.Name, opts)
		}
		words = append(words, f...)
	}
	if len(words) == 0 {
		return nil, nil
	}
	return append([]string{strconv.Itoa(len(words))}, words...), nil
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == 0 }

// CheckPageSize checks that the kernel's dm-verity takes the target's
// block sizes: at most the page size, pageSize. A header that asks for
// more is the image's fault on this machine, whatever the disk does.
func (t Target) CheckPageSize(pageSize int) error {
	p := t.Params.WithDefaults()
	for _, b := range []struct {
		what string
		n    uint32
	}{{"data", p.DataBlockSize}, {"hash", p.HashBlockSize}} {
		if int(b.n) > pageSize {
			return fmt.Errorf("dm-verity %s: %s block size %d is larger than the page size %d, which the kernel's dm-verity refuses", t.Name, b.what, b.n, pageSize)
		}
	}
	return nil
}

// CheckFits checks that the target fits the devices it names, of dataSize
// and hashSize bytes: the image's blocks on the data device, the hash tree
// (after HashOffset and the superblock) on the hash device.
func (t Target) CheckFits(dataSize, hashSize int64) error {
	p := t.Params.WithDefaults()
	g, err := p.geometry()
	if err != nil {
		return fmt.Errorf("dm-verity %s: %w", t.Name, err)
	}
	if need := t.Size(); dataSize < 0 || uint64(dataSize) < need {
		return fmt.Errorf("dm-verity %s: the data device %s holds %d bytes, the image %d", t.Name, t.DataDev, dataSize, need)
	}
	need := (hashStartBlock(t.HashOffset, p.HashBlockSize) + g.treeBlocks()) * uint64(p.HashBlockSize)
	if hashSize < 0 || uint64(hashSize) < need {
		return fmt.Errorf("dm-verity %s: the hash device %s holds %d bytes, the hash tree ends at byte %d", t.Name, t.HashDev, hashSize, need)
	}
	return nil
}
