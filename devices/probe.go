// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrUnknownFS is returned by Probe when no known superblock is found.
var ErrUnknownFS = errors.New("no known filesystem or LUKS signature")

// FS is what a superblock probe found. Type uses blkid's names (ext4,
// btrfs, squashfs, crypto_LUKS, vfat, xfs) so reports read the same as blkid.
type FS struct {
	Type  string
	UUID  string // lowercase canonical, except vfat's serial (XXXX-XXXX)
	Label string
}

// prober probes one superblock layout; ok is false when the magic is absent.
type prober func(r io.ReaderAt) (fs FS, ok bool, err error)

// probers run in order: signatures at byte 0 first, so a filesystem written
// over an older one wins over the remains of the old one further in; vfat
// last because its boot-sector signature is the weakest.
var probers = [...]prober{probeLUKS, probeSquashfs, probeXFS, probeExt, probeBtrfs, probeVFAT}

// Probe identifies the filesystem (or LUKS container) on a device.
func Probe(r io.ReaderAt) (FS, error) {
	for _, p := range probers {
		fs, ok, err := p(r)
		if err != nil {
			return FS{}, err
		}
		if ok {
			return fs, nil
		}
	}
	return FS{}, ErrUnknownFS
}

// readBlock reads n bytes at off; ok is false when the device is too small.
func readBlock(r io.ReaderAt, off int64, n int) (b []byte, ok bool, err error) {
	b = make([]byte, n)
	err = readFull(r, b, off)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %d bytes at %d: %w", n, off, err)
	}
	return b, true, nil
}

// probeExt reads the ext2/3/4 superblock at byte 1024.
func probeExt(r io.ReaderAt) (FS, bool, error) {
	sb, ok, err := readBlock(r, 1024, 256)
	if !ok || binary.LittleEndian.Uint16(sb[56:]) != 0xEF53 {
		return FS{}, false, err
	}
	compat := binary.LittleEndian.Uint32(sb[92:])
	incompat := binary.LittleEndian.Uint32(sb[96:])
	roCompat := binary.LittleEndian.Uint32(sb[100:])
	return FS{
		Type:  extType(compat, incompat, roCompat),
		UUID:  formatUUID(sb[104:120]),
		Label: cString(sb[120:136]),
	}, true, nil
}

// extType follows blkid: features ext3 does not know make it ext4, a journal
// makes ext3, a journal device is jbd.
func extType(compat, incompat, roCompat uint32) string {
	const (
		hasJournal   = 0x4
		journalDev   = 0x8
		ext3Incompat = 0x2 | 0x4 | 0x10 // filetype, recover, meta_bg
		ext3ROCompat = 0x1 | 0x2 | 0x4  // sparse_super, large_file, btree_dir
	)
	switch {
	case incompat&journalDev != 0:
		return "jbd"
	case incompat&^ext3Incompat != 0 || roCompat&^ext3ROCompat != 0:
		return "ext4"
	case compat&hasJournal != 0:
		return "ext3"
	}
	return "ext2"
}

// probeBtrfs reads the btrfs superblock at 64 KiB.
func probeBtrfs(r io.ReaderAt) (FS, bool, error) {
	sb, ok, err := readBlock(r, 65536, 299+256)
	if !ok || string(sb[64:72]) != "_BHRfS_M" {
		return FS{}, false, err
	}
	return FS{Type: "btrfs", UUID: formatUUID(sb[32:48]), Label: cString(sb[299:])}, true, nil
}

// probeSquashfs checks the squashfs magic; squashfs has no UUID or label.
func probeSquashfs(r io.ReaderAt) (FS, bool, error) {
	sb, ok, err := readBlock(r, 0, 4)
	if !ok || string(sb) != "hsqs" {
		return FS{}, false, err
	}
	return FS{Type: "squashfs"}, true, nil
}

// probeLUKS reads the LUKS1/LUKS2 binary header; both keep the UUID as a
// string at byte 168, only LUKS2 has a label (at byte 24).
func probeLUKS(r io.ReaderAt) (FS, bool, error) {
	h, ok, err := readBlock(r, 0, 208)
	if !ok || string(h[:6]) != "LUKS\xba\xbe" {
		return FS{}, false, err
	}
	fs := FS{Type: "crypto_LUKS", UUID: strings.ToLower(cString(h[168:208]))}
	if binary.BigEndian.Uint16(h[6:]) == 2 {
		fs.Label = cString(h[24:72])
	}
	return fs, true, nil
}

// luks2SecondaryMagic starts a LUKS2 volume's second copy of its header,
// which follows the first at one of the header sizes the specification
// allows, 16 KiB to 4 MiB.
const luks2SecondaryMagic = "SKUL\xba\xbe"

// ProbeLUKS2Second finds a LUKS2 volume whose first sectors are wiped or
// unreadable (a stray dd, a bad block) by the second copy of its header, as
// cryptsetup opens it. It is for a partition already chosen as the data
// partition by other means, when Probe found nothing there or could not
// read it (package datapart): never for matching a UUID= or LABEL=, since
// the bytes it reads may be any file's or swap page's on a device keel
// does not know (found in review). Only when the first 4 KiB are blank
// (zeros, as a wiped LUKS2 binary header leaves them) or unreadable: a
// device with a signature keel does not probe (swap, NTFS, an LVM label)
// is never taken for a volume. The copy must say where it is twice
// (hdr_size and hdr_offset); the unlock checks its checksum.
func ProbeLUKS2Second(r io.ReaderAt) (FS, bool, error) {
	head, ok, err := readBlock(r, 0, 4096)
	if ok && !bytes.Equal(head, make([]byte, len(head))) {
		return FS{}, false, nil
	}
	if !ok && err == nil {
		return FS{}, false, nil // a device smaller than 4 KiB
	}
	for at := int64(16 << 10); at <= 4<<20; at *= 2 {
		h, ok, err := readBlock(r, at, 264)
		if err != nil {
			return FS{}, false, err
		}
		if !ok {
			break // past the end of the device
		}
		if string(h[:6]) == luks2SecondaryMagic && binary.BigEndian.Uint16(h[6:]) == 2 &&
			binary.BigEndian.Uint64(h[8:]) == uint64(at) && binary.BigEndian.Uint64(h[256:]) == uint64(at) {
			return FS{Type: "crypto_LUKS", UUID: strings.ToLower(cString(h[168:208])), Label: cString(h[24:72])}, true, nil
		}
	}
	return FS{}, false, nil
}

// probeXFS reads the XFS superblock at byte 0.
func probeXFS(r io.ReaderAt) (FS, bool, error) {
	sb, ok, err := readBlock(r, 0, 120)
	if !ok || string(sb[:4]) != "XFSB" {
		return FS{}, false, err
	}
	return FS{Type: "xfs", UUID: formatUUID(sb[32:48]), Label: cString(sb[108:120])}, true, nil
}

// probeVFAT reads a FAT boot sector. Only the boot-sector label is read, not
// the root directory's volume entry that blkid prefers; mkfs writes both.
func probeVFAT(r io.ReaderAt) (FS, bool, error) {
	bs, ok, err := readBlock(r, 0, 512)
	if !ok || !isFATBootSector(bs) {
		return FS{}, false, err
	}
	ext := bs[36:] // FAT12/16 extended BPB
	if binary.LittleEndian.Uint16(bs[22:]) == 0 {
		ext = bs[64:] // FAT32: sectors per FAT is 0 here, the BPB is longer
	}
	if (ext[2] != 0x29 && ext[2] != 0x28) || !bytes.HasPrefix(ext[18:26], []byte("FAT")) {
		return FS{}, false, nil
	}
	serial := binary.LittleEndian.Uint32(ext[3:])
	label := strings.TrimRight(string(ext[7:18]), " \x00")
	if label == "NO NAME" {
		label = ""
	}
	return FS{Type: "vfat", UUID: fmt.Sprintf("%04X-%04X", serial>>16, serial&0xffff), Label: label}, true, nil
}

// isFATBootSector checks the BPB fields a FAT boot sector must have; they
// tell it apart from an MBR or NTFS, which share the 0x55AA signature.
func isFATBootSector(bs []byte) bool {
	bps := binary.LittleEndian.Uint16(bs[11:])
	spc := bs[13]
	return (bs[0] == 0xEB || bs[0] == 0xE9) && bs[510] == 0x55 && bs[511] == 0xAA &&
		bps >= 512 && bps <= 4096 && bps&(bps-1) == 0 &&
		spc != 0 && spc&(spc-1) == 0 &&
		binary.LittleEndian.Uint16(bs[14:]) != 0 && bs[16] != 0
}

// formatUUID formats 16 bytes as a big-endian (RFC 4122) UUID.
func formatUUID(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// cString returns b up to its first NUL, with invalid UTF-8 replaced.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
