// SPDX-License-Identifier: Apache-2.0

package verity

import (
	"bytes"
	"fmt"
	"io"
)

// maxTreeBytes bounds the tree Format and Verify hold in memory: 1 GiB is
// the tree of a 128 GiB image with 4 KiB blocks and sha256.
const maxTreeBytes = 1 << 30

// Format writes the hash device byte for byte as `veritysetup format
// --format=1` writes it for the same salt and uuid: the 512-byte superblock
// padded to HashBlockSize, then the tree levels top level first, each padded
// to whole hash blocks. It reads p.DataBlocks blocks of data and returns the
// root hash.
func Format(data io.ReaderAt, p Params, out io.Writer) (root []byte, err error) {
	p = p.WithDefaults()
	g, err := p.geometry()
	if err != nil {
		return nil, err
	}
	sb, err := NewSuperblock(p)
	if err != nil {
		return nil, err
	}
	head, err := sb.MarshalBinary()
	if err != nil {
		return nil, err
	}
	tree, root, err := g.build(data)
	if err != nil {
		return nil, err
	}
	head = append(head, make([]byte, g.hbs-len(head))...)
	if _, err := out.Write(head); err != nil {
		return nil, fmt.Errorf("verity: writing superblock: %w", err)
	}
	if _, err := out.Write(tree); err != nil {
		return nil, fmt.Errorf("verity: writing %d-byte hash tree: %w", len(tree), err)
	}
	return root, nil
}

// build computes the tree over data, laid out as on disk, and the root hash.
func (g geometry) build(data io.ReaderAt) (tree, root []byte, err error) {
	src := g.dataSource(data)
	if err := src.read(make([]byte, g.dbs), g.dataBlocks-1); err != nil {
		return nil, nil, err // fail before hashing when the device is short
	}
	if tree, err = g.allocTree(); err != nil {
		return nil, nil, err
	}
	for i := range g.levels {
		lvl := g.level(tree, i)
		if err := g.hashBlocks(src, lvl); err != nil {
			return nil, nil, err
		}
		src = g.levelSource(lvl, i)
	}
	root, err = g.rootOf(src)
	return tree, root, err
}

// rootOf is the digest of the single block at the top of src.
func (g geometry) rootOf(top blockSource) ([]byte, error) {
	top.n = 1
	buf := make([]byte, g.stride)
	if err := g.hashBlocks(top, buf); err != nil {
		return nil, err
	}
	return buf[:g.alg.size], nil
}

func (g geometry) allocTree() ([]byte, error) {
	n := g.treeBlocks() * uint64(g.hbs)
	if n > maxTreeBytes {
		return nil, fmt.Errorf("verity: hash tree over %d data blocks is %d bytes, more than the %d this package holds in memory", g.dataBlocks, n, maxTreeBytes)
	}
	return make([]byte, n), nil
}

// level is level i's part of tree.
func (g geometry) level(tree []byte, i int) []byte {
	start := g.levelStart(i) * uint64(g.hbs)
	return tree[start : start+g.levels[i]*uint64(g.hbs)]
}

func (g geometry) dataSource(data io.ReaderAt) blockSource {
	return blockSource{r: data, name: "data", n: g.dataBlocks, bs: g.dbs}
}

// levelSource reads the hash blocks of level i from lvl.
func (g geometry) levelSource(lvl []byte, i int) blockSource {
	return blockSource{r: bytes.NewReader(lvl), name: fmt.Sprintf("level %d", i), n: g.levels[i], bs: g.hbs}
}
