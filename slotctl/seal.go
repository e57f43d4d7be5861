// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/keel-boot/keel/slots"
	slotkeys "github.com/keel-boot/keel/slots/keys"
)

// runSeal writes the verity partition content of a SquashFS image.
func runSeal(e *env, args []string) error {
	fs := newFlags(e, "seal")
	image := fs.String("image", "", "SquashFS image (the root-X partition content)")
	out := fs.String("out", "", "file to write (the verity-X partition content)")
	keyPath := fs.String("key", "", "private key to sign the header with (default: unsigned)")
	imageID := fs.String("image-id", "", "image id, up to 64 printable characters (default: first 12 hex digits of the root hash)")
	rollback := fs.Uint64("rollback-index", 0, "rollback index in the signed header (0 to 4294967295): a locked machine refuses images below the highest index it marked good")
	saltHex := fs.String("salt", "", `verity salt in hex, "-" for none (default: 32 random bytes, or derived from the image when SOURCE_DATE_EPOCH is set)`)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if err := required("image", *image, "out", *out); err != nil {
		return err
	}
	o, err := sealOptions(e, *keyPath, *imageID, *saltHex)
	if err != nil {
		return err
	}
	if *rollback > 1<<32-1 {
		return usagef("--rollback-index %d: expected 0 to 4294967295", *rollback)
	}
	o.RollbackIndex = *rollback
	h, err := sealFile(*image, *out, o)
	if err != nil {
		return err
	}
	printSeal(e.stdout, *image, *out, h)
	return nil
}

// sealOptions turns the flags and SOURCE_DATE_EPOCH into slots.SealOptions.
// With SOURCE_DATE_EPOCH set the seal is reproducible: that creation time,
// and salt and uuid derived from the image.
func sealOptions(e *env, keyPath, imageID, saltHex string) (slots.SealOptions, error) {
	o := slots.SealOptions{ImageID: imageID, Created: e.now()}
	if s := e.getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return o, fmt.Errorf("SOURCE_DATE_EPOCH=%q, expected seconds since 1970", s)
		}
		o.Created, o.Reproducible = time.Unix(sec, 0), true
	}
	salt, err := parseSalt(saltHex)
	if err != nil {
		return o, err
	}
	o.Salt = salt
	if keyPath != "" {
		if o.Key, err = slotkeys.LoadPrivateKey(keyPath); err != nil {
			return o, err
		}
	}
	return o, nil
}

// parseSalt reads --salt: "" means unset (nil), "-" an empty salt as in
// veritysetup.
func parseSalt(s string) ([]byte, error) {
	switch s {
	case "":
		return nil, nil
	case "-":
		return []byte{}, nil
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, usagef("--salt %q: expected hex digits: %v", s, err)
	}
	return b, nil
}

// sealFile seals the image at imagePath into outPath atomically.
func sealFile(imagePath, outPath string, o slots.SealOptions) (*slots.Header, error) {
	f, err := os.Open(imagePath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Seek rather than Stat: a block device reports size 0 in Stat.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	var h *slots.Header
	err = writeFile(outPath, 0o644, true, func(w io.Writer) error {
		h, err = slots.Seal(f, size, o, w)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", imagePath, err)
	}
	return h, nil
}

func printSeal(w io.Writer, image, out string, h *slots.Header) {
	root := hex.EncodeToString(h.RootHash)
	fmt.Fprintf(w, "sealed %s into %s\n", image, out)
	fmt.Fprintf(w, "image id:   %s\n", h.ImageID)
	fmt.Fprintf(w, "root hash:  %s\n", root)
	fmt.Fprintf(w, "key id:     %s\n", keyIDString(h))
	fmt.Fprintf(w, "rollback:   %d\n", h.RollbackIndex)
	fmt.Fprintf(w, "image size: %d bytes (%d blocks of %d)\n", h.ImageSize, h.Verity.DataBlocks, h.Verity.DataBlockSize)
	fmt.Fprintf(w, "hash tree:  %d bytes at offset %d (%d bytes in all)\n", h.HashSize, h.HashOffset, h.HashOffset+h.HashSize)
	fmt.Fprintf(w, "check with: veritysetup verify %s %s %s --hash-offset=%d\n", image, out, root, h.HashOffset)
}

// keyIDString is the hex key id, or "unsigned".
func keyIDString(h *slots.Header) string {
	if !h.Signed() {
		return "unsigned"
	}
	return hex.EncodeToString(h.KeyID[:])
}

// loadTrusted reads the --trust files.
func loadTrusted(paths []string) ([]ed25519.PublicKey, error) {
	keys, err := slotkeys.LoadTrusted(paths)
	if err != nil {
		return nil, fmt.Errorf("--trust: %w", err)
	}
	return keys, nil
}
