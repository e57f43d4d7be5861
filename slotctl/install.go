// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/report"
	"github.com/keel-boot/keel/slots"
	"github.com/keel-boot/keel/verity"
)

// installJob is one slotctl install: what goes where.
type installJob struct {
	t              *target
	slot           slots.Slot
	image, verity  string // input files
	trusted        []ed25519.PublicKey
	tries          int
	force          bool // --force: even over the only good slot, or reusing the slot's image id
	rootP, verityP *partition
	prog           *progress // nil: no progress shown
	notes          io.Writer // what the install says besides its result (nil: nothing)
}

// runInstall writes a sealed image into a slot that is not running,
// verifies what landed on the partitions, and only then sets it next.
func runInstall(e *env, args []string) error {
	fs := newFlags(e, "install")
	t := targetFlags(e, fs)
	slotName := fs.String("slot", "", "slot to write: a or b (never the running one)")
	tries := fs.Int("tries", bootstate.DefaultTries, "boots the new slot gets to be marked good (1 to 255)")
	force := fs.Bool("force", false, "write the slot even if it is the only good one while the running slot is unconfirmed, or if the image reuses the image id of the one in the slot with other contents")
	quiet := fs.Bool("quiet", false, "show no progress (the default when stderr is not a terminal)")
	showProg := fs.Bool("progress", false, "show progress on stderr even when it is not a terminal")
	var trust listFlag
	fs.Var(&trust, "trust", "trusted public key file (repeatable); without any, an unsigned header is accepted")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *quiet && *showProg {
		return usagef("--quiet and --progress contradict each other")
	}
	j, err := newInstallJob(t, *slotName, pos, *tries, trust)
	if err != nil {
		return err
	}
	j.force, j.notes = *force, e.stdout
	j.prog = newProgress(e.stderr, e.now, showProgress(*quiet, *showProg, isTerminal(e.stderr)))
	h, authenticated, err := j.run()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "installed image %s into slot %s: %s, %s\n", h.ImageID, j.slot, j.rootP, j.verityP)
	fmt.Fprintf(e.stdout, "root hash %s, %s; read back and verified\n", hex.EncodeToString(h.RootHash), trustNote(h, authenticated))
	return nil
}

func newInstallJob(t *target, slotName string, pos []string, tries int, trust []string) (*installJob, error) {
	if slotName == "" {
		return nil, usagef("--slot is required")
	}
	x, err := slots.ParseSlot(slotName)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if len(pos) != 2 {
		return nil, usagef("expected IMAGE and VERITY files, got %d arguments", len(pos))
	}
	if tries < 1 || tries > 255 {
		return nil, usagef("--tries %d: expected 1 to 255", tries)
	}
	trusted, err := loadTrusted(trust)
	if err != nil {
		return nil, err
	}
	return &installJob{t: t, slot: x, image: pos[0], verity: pos[1], trusted: trusted, tries: tries}, nil
}

// run does the install. The slot is marked bad before its partitions are
// touched, so that a half-written slot is never booted, and set next only
// once its partitions verified.
func (j *installJob) run() (*slots.Header, bool, error) {
	if err := j.t.refuseRunning(j.slot, "install over"); err != nil {
		return nil, false, err
	}
	if err := j.t.refuseLastGood(j.slot, "install over", j.force); err != nil {
		return nil, false, err
	}
	if err := j.trustRunning(); err != nil {
		return nil, false, err
	}
	in, err := openInputs(j.image, j.verity, j.trusted)
	if err != nil {
		return nil, false, err
	}
	defer in.Close()
	if err := j.checkRollback(in.h); err != nil {
		return nil, false, err
	}
	if err := j.checkIDReuse(in.h); err != nil {
		return nil, false, err
	}
	if err := j.openPartitions(in); err != nil {
		return nil, false, err
	}
	defer closeAll(j.rootP, j.verityP)
	if err := j.checkInputs(in); err != nil {
		return nil, false, err
	}
	if inputsChecked != nil {
		inputsChecked()
	}
	if err := j.markBad("install in progress (slotctl install)"); err != nil {
		return nil, false, err
	}
	h, authenticated, err := j.writeAndVerify(in)
	if err != nil {
		return nil, false, j.failed(err)
	}
	_, err = j.t.withState(func(s *bootstate.State) error { return s.SetNext(j.slot, j.tries, "") })
	return h, authenticated, err
}

// inputsChecked, when not nil, is called once install has checked its
// input files, before it marks the slot bad and writes it (tests change
// the files there).
var inputsChecked func()

// installInput is an install's image and verity files, each opened once,
// and the header read from the verity file once and checked: the checks
// and the writes read through these descriptors only, never by name again,
// so that other files put in the place of the ones given (a shared download
// directory, an agent's staging area) are neither checked nor written.
type installInput struct {
	image, verity         *os.File
	imageSize, veritySize int64 // when the sizes were checked; only as much is written
	h                     *slots.Header
	header                []byte // h as read and checked, byte for byte
}

// openInputs opens the image and verity files and checks the verity
// file's header and signature, before anything is written.
func openInputs(image, verity string, trusted []ed25519.PublicKey) (_ *installInput, err error) {
	in := &installInput{}
	defer func() {
		if err != nil {
			in.Close()
		}
	}()
	if in.verity, err = os.Open(verity); err != nil {
		return nil, err
	}
	if in.h, in.header, err = verifyHeaderFile(in.verity, trusted); err != nil {
		return nil, err
	}
	if in.image, err = os.Open(image); err != nil {
		return nil, err
	}
	if in.imageSize, err = fileSize(in.image); err != nil {
		return nil, err
	}
	if in.veritySize, err = fileSize(in.verity); err != nil {
		return nil, err
	}
	return in, nil
}

func fileSize(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (in *installInput) Close() {
	for _, f := range []*os.File{in.image, in.verity} {
		if f != nil {
			f.Close()
		}
	}
}

// checkInputs refuses, before the slot is marked bad or written, input
// files shorter than their signed header says they are (a download cut
// short, a disk full while it was stored): the tree check would find that
// only once the slot's old image had been overwritten up to the cut, and a
// slot that was good would be lost to it. So is an image larger than the
// slot's partition.
func (j *installJob) checkInputs(in *installInput) error {
	h := in.h
	for _, f := range []struct {
		file, what string
		size       int64
		need       uint64
	}{{j.image, "image", in.imageSize, h.ImageSize}, {j.verity, "header and hash tree", in.veritySize, h.HashOffset + h.HashSize}} {
		if uint64(f.size) < f.need {
			return fmt.Errorf("%s: %d bytes, but the signed header of image %s says its %s take %d: the file is cut short (an interrupted download, a full disk?): nothing was written",
				f.file, f.size, h.ImageID, f.what, f.need)
		}
	}
	if h.ImageSize > uint64(j.rootP.size) {
		return fmt.Errorf("%s: partition is %d bytes, image %s is %d bytes: it does not fit: nothing was written", j.rootP, j.rootP.size, h.ImageID, h.ImageSize)
	}
	return nil
}

// trustRunning takes, when no --trust is given, the keys the running
// initramfs trusts (its boot report's trusted_keys): an image it would
// refuse to boot (unsigned, or signed by another key) must not be written
// over a slot that may be this machine's only fallback. A locked boot whose
// report names no keys (an older init) leaves --trust required.
func (j *installJob) trustRunning() error {
	if len(j.trusted) > 0 {
		return nil
	}
	r, err := j.t.bootReport()
	if err != nil || r == nil {
		return nil // --disk, or no report: the running() check said what it had to
	}
	if j.trusted, err = reportKeys(r); err != nil {
		return fmt.Errorf("%w: pass --trust KEY: nothing was written", err)
	}
	if len(j.trusted) == 0 && r.Locked {
		return fmt.Errorf("this machine's initramfs is locked and boots only images signed by its keys, which its boot report does not list: pass --trust KEY (the public key the images are signed with): nothing was written")
	}
	return nil
}

// reportKeys are the keys the boot report says the init trusts.
func reportKeys(r *report.Report) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for i, k := range r.TrustedKeys {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("the boot report's trusted key %d (%q): expected the base64 of a %d-byte ed25519 key", i, k, ed25519.PublicKeySize)
		}
		keys = append(keys, ed25519.PublicKey(raw))
	}
	return keys, nil
}

// checkIDReuse refuses, unless --force, an image whose id is the one the
// slot holds but whose root hash is not: the slot's persistent upper, the
// /etc merge's base and the boot state's checks are keyed by the image id,
// and the old upper, its copy-ups and whiteouts made against the old
// image, would be mounted over the new one without a merge (docs/data.md:
// the same bits have the same image id). A slot whose header cannot be
// read holds no image to confuse.
func (j *installJob) checkIDReuse(h *slots.Header) error {
	if j.force {
		return nil
	}
	p, err := j.t.open(j.slot.VerityLabel(), false)
	if err != nil {
		return nil // openPartitions names it
	}
	defer p.Close()
	cur, err := slots.ReadHeader(p)
	if err != nil || cur.ImageID != h.ImageID || bytes.Equal(cur.RootHash, h.RootHash) {
		return nil
	}
	return fmt.Errorf("%s: image id %s is the one slot %s holds, with another root hash (%x…, the slot's %x…): an image id must name one image, since the slot's upper and the /etc merge go by it; seal the new image with a new --image-id (--force to write it anyway): nothing was written",
		j.verity, h.ImageID, j.slot, h.RootHash[:min(8, len(h.RootHash))], cur.RootHash[:min(8, len(cur.RootHash))])
}

// checkRollback refuses, before anything is written, an image that a
// locked machine would refuse to boot: one whose rollback index is below
// the highest index this machine marked good.
func (j *installJob) checkRollback(h *slots.Header) error {
	s, err := j.t.withState(func(*bootstate.State) error { return nil })
	if err != nil {
		return err
	}
	var keys []ed25519.PublicKey
	if len(j.trusted) > 0 {
		keys = j.trusted
	}
	err, note := j.t.belowFloor(h, s.RollbackFloor, j.verity, keys)
	if err != nil {
		return fmt.Errorf("%w: nothing was written", err)
	}
	if note != "" && j.notes != nil {
		fmt.Fprintf(j.notes, "slotctl install: %s\n", note)
	}
	return nil
}

// checkFloor refuses an image below the rollback floor: a locked init
// would refuse to boot it. what names where the header came from.
func checkFloor(h *slots.Header, floor uint64, what string) error {
	if h.RollbackIndex < floor {
		return fmt.Errorf("%s: image %s has rollback index %d, below this machine's floor %d (an image with index %d was marked good)",
			what, h.ImageID, h.RollbackIndex, floor, floor)
	}
	return nil
}

// verifyHeaderFile reads the input's header and checks it and its
// signature before anything is overwritten, and returns it with its bytes.
// The image's hash tree is checked while it is written (writeAndVerify).
func verifyHeaderFile(verity *os.File, trusted []ed25519.PublicKey) (*slots.Header, []byte, error) {
	b := make([]byte, slots.HeaderSize)
	if _, err := verity.ReadAt(b, 0); err != nil {
		return nil, nil, fmt.Errorf("%s: read slot header: %w: nothing was written", verity.Name(), err)
	}
	h, err := slots.ParseHeader(b)
	if err == nil {
		_, err = h.Authenticate(trusted)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w: nothing was written", verity.Name(), err)
	}
	return h, b, nil
}

// openPartitions opens root-X and verity-X for writing and checks that the
// files fit.
func (j *installJob) openPartitions(in *installInput) error {
	var err error
	if j.rootP, err = j.t.open(j.slot.RootLabel(), true); err != nil {
		return err
	}
	if j.verityP, err = j.t.open(j.slot.VerityLabel(), true); err != nil {
		return err
	}
	if err := fits(j.image, in.imageSize, j.rootP); err != nil {
		return err
	}
	return fits(j.verity, in.veritySize, j.verityP)
}

// fits checks that file, of size bytes, is no larger than the partition.
func fits(file string, size int64, p *partition) error {
	if size > p.size {
		return fmt.Errorf("%s: partition is %d bytes, %s is %d bytes: it does not fit", p, p.size, file, size)
	}
	return nil
}

// writeAndVerify writes both files and verifies the partitions as the
// init will read them. The image is written while its hash tree is checked
// against the verity file: verity.Verify reads the image in 1 MiB chunks
// on every core, and each chunk read is written at once at the same offset
// of root-X (teeReaderAt), so the input is read once and hashing overlaps
// the I/O. Then the verity file is written, both partitions are synced,
// their page cache dropped, and read back and checked again: header,
// signature and the whole tree. Both files are read through in's
// descriptors, the tree checked against in's checked header.
func (j *installJob) writeAndVerify(in *installInput) (*slots.Header, bool, error) {
	h, size := in.h, in.imageSize
	j.prog.begin("writing "+j.rootP.label, size)
	tee := &teeReaderAt{r: in.image, w: j.rootP, prog: j.prog}
	err := verity.Verify(tee, h.HashDevice(in.verity), h.Verity, h.RootHash)
	if err == nil {
		err = copyTail(in.image, j.rootP, treeCovers(h.Verity, size), size, j.prog)
	}
	j.prog.end()
	if werr := tee.writeErr(); werr != nil {
		return nil, false, fmt.Errorf("write %s to %s: %w", j.image, j.rootP, werr)
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s: image %s: %w", j.image, h.ImageID, err)
	}
	if err := j.rootP.Sync(); err != nil {
		return nil, false, fmt.Errorf("sync %s: %w", j.rootP, err)
	}
	if err := copyInto(in.verity, in.veritySize, j.verityP); err != nil {
		return nil, false, err
	}
	if err := j.rootP.dropCache(size); err != nil {
		return nil, false, err
	}
	if err := j.verityP.dropCache(in.veritySize); err != nil {
		return nil, false, err
	}
	j.prog.begin("checking "+j.rootP.label, size)
	h, authenticated, err := slots.VerifyPartition(countingReaderAt{j.rootP, j.prog}, j.verityP, j.trusted)
	j.prog.end()
	if werr := in.checkWritten(j.verityP); werr != nil {
		return nil, false, werr // it explains a failed read-back too
	}
	if err != nil {
		return nil, false, fmt.Errorf("read back %s and %s: %w", j.rootP, j.verityP, err)
	}
	return h, authenticated, nil
}

// checkWritten requires the header read back from p to be the checked
// one, byte for byte: the verity file is copied as it is when it is read,
// and one rewritten in place during the install, which holding it open
// does not stop, may hold another header over the same tree, or a tree
// that matches its own header only (an older image signed by the same
// key, below the rollback floor), which the read-back alone would pass.
func (in *installInput) checkWritten(p *partition) error {
	b := make([]byte, slots.HeaderSize)
	if _, err := p.ReadAt(b, 0); err != nil {
		return fmt.Errorf("read back %s: read slot header: %w", p, err)
	}
	if bytes.Equal(b, in.header) {
		return nil
	}
	return fmt.Errorf("read back %s: its header is not the one checked before the write: %s: %s was changed during the install",
		p, headerChange(in.h, b), in.verity.Name())
}

// headerChange names the fields in which the header b differs from was.
func headerChange(was *slots.Header, b []byte) string {
	h, err := slots.ParseHeader(b)
	if err != nil {
		return err.Error()
	}
	var d []string
	for _, f := range [][3]string{
		{"image id", h.ImageID, was.ImageID},
		{"rollback index", fmt.Sprint(h.RollbackIndex), fmt.Sprint(was.RollbackIndex)},
		{"root hash", hex.EncodeToString(h.RootHash), hex.EncodeToString(was.RootHash)},
		{"signing key", keyIDString(h), keyIDString(was)},
	} {
		if f[1] != f[2] {
			d = append(d, fmt.Sprintf("%s %s, not %s", f[0], f[1], f[2]))
		}
	}
	if len(d) == 0 {
		return "other fields differ (sizes, the tree's parameters, the creation time or the signature)"
	}
	return strings.Join(d, "; ")
}

// treeCovers is how many of the size bytes of an image the tree of p
// covers: its data blocks, or all of them.
func treeCovers(p verity.Params, size int64) int64 {
	bs := int64(p.WithDefaults().DataBlockSize)
	if bs > 0 && p.DataBlocks < uint64(size/bs) {
		return int64(p.DataBlocks) * bs
	}
	return size
}

// copyBuffer is the size of install's reads and writes outside the tree
// check: large, aligned I/O.
const copyBuffer = 4 << 20

// copyInto writes the first size bytes of the open file f at the start of
// p and syncs it.
func copyInto(f *os.File, size int64, p *partition) error {
	if err := copyTail(f, p, 0, size, nil); err != nil {
		return fmt.Errorf("write %s to %s: %w", f.Name(), p, err)
	}
	if err := p.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}

// copyTail copies bytes from to end of r to the same offsets of w, in
// copyBuffer pieces: the part of an image past its last data block, which
// the tree check does not read, or a whole small file.
func copyTail(r io.ReaderAt, w io.WriterAt, from, end int64, prog *progress) error {
	buf := make([]byte, min(copyBuffer, max(end-from, 0)))
	for off := from; off < end; {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if n > 0 {
			if _, werr := w.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
			prog.add(n)
			off += int64(n)
		}
		if err == io.EOF && off < end {
			return io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// teeReaderAt writes what it reads from r at the same offset of w, so that
// a check reading r copies it on the way. The first write error is kept
// for writeErr, and fails the read that met it. It is safe for concurrent
// use, as verity.Verify's workers read in parallel.
type teeReaderAt struct {
	r    io.ReaderAt
	w    io.WriterAt
	prog *progress
	mu   sync.Mutex
	err  error
}

func (t *teeReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := t.r.ReadAt(b, off)
	if n > 0 {
		if _, werr := t.w.WriteAt(b[:n], off); werr != nil {
			t.mu.Lock()
			if t.err == nil {
				t.err = werr
			}
			t.mu.Unlock()
			return 0, werr
		}
		t.prog.add(n)
	}
	return n, err
}

func (t *teeReaderAt) writeErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// countingReaderAt counts what is read from r as progress.
type countingReaderAt struct {
	r    io.ReaderAt
	prog *progress
}

func (c countingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(b, off)
	c.prog.add(n)
	return n, err
}

func (j *installJob) markBad(reason string) error {
	_, err := j.t.withState(func(s *bootstate.State) error { return s.MarkBad(j.slot, reason) })
	return err
}

// failed records a failed install in the boot state and returns err.
func (j *installJob) failed(err error) error {
	if merr := j.markBad("install failed: " + err.Error()); merr != nil {
		return fmt.Errorf("%w (and the boot state was not updated: %v)", err, merr)
	}
	return fmt.Errorf("%w: slot %s stays marked bad", err, j.slot)
}
