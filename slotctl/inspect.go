// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
)

// runInspect prints the header of a verity partition.
func runInspect(e *env, args []string) error {
	fs := newFlags(e, "inspect")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("expected one verity partition or file, got %d arguments", len(pos))
	}
	h, err := readHeaderFile(pos[0])
	if err != nil {
		return err
	}
	v := newHeaderView(h)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	v.print(e.stdout)
	return nil
}

func readHeaderFile(path string) (*slots.Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := slots.ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// headerView is the printed form of a header: hex for bytes, RFC 3339 time.
type headerView struct {
	ImageID       string `json:"image_id"`
	Created       string `json:"created"`
	ImageSize     uint64 `json:"image_size"`
	HashAlg       string `json:"hash_algorithm"`
	DataBlockSize uint32 `json:"data_block_size"`
	HashBlockSize uint32 `json:"hash_block_size"`
	DataBlocks    uint64 `json:"data_blocks"`
	Salt          string `json:"salt"`
	UUID          string `json:"uuid"`
	HashOffset    uint64 `json:"hash_offset"`
	HashSize      uint64 `json:"hash_size"`
	RootHash      string `json:"root_hash"`
	RollbackIndex uint64 `json:"rollback_index"`
	Signed        bool   `json:"signed"`
	KeyID         string `json:"key_id,omitempty"`
	Signature     string `json:"signature,omitempty"`
}

func newHeaderView(h *slots.Header) headerView {
	v := headerView{
		ImageID: h.ImageID, Created: h.Created.UTC().Format(time.RFC3339), ImageSize: h.ImageSize,
		HashAlg: h.Verity.HashAlg, DataBlockSize: h.Verity.DataBlockSize, HashBlockSize: h.Verity.HashBlockSize,
		DataBlocks: h.Verity.DataBlocks, Salt: hex.EncodeToString(h.Verity.Salt), UUID: verity.FormatUUID(h.Verity.UUID),
		HashOffset: h.HashOffset, HashSize: h.HashSize, RootHash: hex.EncodeToString(h.RootHash), Signed: h.Signed(),
		RollbackIndex: h.RollbackIndex,
	}
	if h.Signed() {
		v.KeyID, v.Signature = hex.EncodeToString(h.KeyID[:]), hex.EncodeToString(h.Signature)
	}
	return v
}

func (v headerView) print(w io.Writer) {
	rows := []struct{ k, v any }{
		{"image id", v.ImageID}, {"created", v.Created}, {"image size", v.ImageSize},
		{"hash algorithm", v.HashAlg}, {"data block size", v.DataBlockSize}, {"hash block size", v.HashBlockSize},
		{"data blocks", v.DataBlocks}, {"salt", v.Salt}, {"uuid", v.UUID},
		{"hash offset", v.HashOffset}, {"hash size", v.HashSize}, {"root hash", v.RootHash}, {"rollback index", v.RollbackIndex},
		{"key id", orUnsigned(v.KeyID)}, {"signature", orUnsigned(v.Signature)},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-16s %v\n", fmt.Sprint(r.k)+":", r.v)
	}
}

func orUnsigned(s string) string {
	if s == "" {
		return "unsigned"
	}
	return s
}
