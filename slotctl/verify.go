// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/hex"
	"fmt"
	"os"

	"github.com/keel-boot/keel/slots"
)

// runVerify checks a sealed slot completely: header, signature, hash tree.
func runVerify(e *env, args []string) error {
	fs := newFlags(e, "verify")
	image := fs.String("image", "", "SquashFS image or root-X partition")
	verityPath := fs.String("verity", "", "verity-X partition or file written by slotctl seal")
	var trust listFlag
	fs.Var(&trust, "trust", "trusted public key file (repeatable); without any, an unsigned header is accepted")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if err := required("image", *image, "verity", *verityPath); err != nil {
		return err
	}
	trusted, err := loadTrusted(trust)
	if err != nil {
		return err
	}
	img, err := os.Open(*image)
	if err != nil {
		return err
	}
	defer img.Close()
	part, err := os.Open(*verityPath)
	if err != nil {
		return err
	}
	defer part.Close()
	h, authenticated, err := slots.VerifyPartition(img, part, trusted)
	if err != nil {
		return fmt.Errorf("%s: %w", *verityPath, err)
	}
	fmt.Fprintf(e.stdout, "ok: image %s, root hash %s, %s\n", h.ImageID, hex.EncodeToString(h.RootHash), trustNote(h, authenticated))
	return nil
}

func trustNote(h *slots.Header, authenticated bool) string {
	switch {
	case authenticated:
		return "signed by trusted key " + keyIDString(h)
	case h.Signed():
		return "signed by key " + keyIDString(h) + " (not authenticated: no --trust key given)"
	}
	return "unsigned (not authenticated)"
}
