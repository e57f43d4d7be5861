// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/slots"
)

// installJob is one slotctl install: what goes where.
type installJob struct {
	t              *target
	slot           slots.Slot
	image, verity  string // input files
	trusted        []ed25519.PublicKey
	tries          int
	force          bool // --force: even over the only good slot
	rootP, verityP *partition
}

// runInstall writes a sealed image into a slot that is not running,
// verifies what landed on the partitions, and only then sets it next.
func runInstall(e *env, args []string) error {
	fs := newFlags(e, "install")
	t := targetFlags(fs)
	slotName := fs.String("slot", "", "slot to write: a or b (never the running one)")
	tries := fs.Int("tries", bootstate.DefaultTries, "boots the new slot gets to be marked good (1 to 255)")
	force := fs.Bool("force", false, "write the slot even if it is the only good one while the running slot is unconfirmed")
	var trust listFlag
	fs.Var(&trust, "trust", "trusted public key file (repeatable); without any, an unsigned header is accepted")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	j, err := newInstallJob(t, *slotName, pos, *tries, trust)
	if err != nil {
		return err
	}
	j.force = *force
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
	h, _, err := verifyFiles(j.image, j.verity, j.trusted)
	if err != nil {
		return nil, false, err
	}
	if err := j.checkRollback(h); err != nil {
		return nil, false, err
	}
	if err := j.openPartitions(); err != nil {
		return nil, false, err
	}
	defer closeAll(j.rootP, j.verityP)
	if err := j.markBad("install in progress (slotctl install)"); err != nil {
		return nil, false, err
	}
	h, authenticated, err := j.writeAndVerify()
	if err != nil {
		return nil, false, j.failed(err)
	}
	_, err = j.t.withState(func(s *bootstate.State) error { return s.SetNext(j.slot, j.tries) })
	return h, authenticated, err
}

// checkRollback refuses, before anything is written, an image that a
// locked machine would refuse to boot: one whose rollback index is below
// the highest index this machine marked good.
func (j *installJob) checkRollback(h *slots.Header) error {
	s, err := j.t.withState(func(*bootstate.State) error { return nil })
	if err != nil {
		return err
	}
	if err := checkFloor(h, s.RollbackFloor, j.verity); err != nil {
		return fmt.Errorf("%w: nothing was written", err)
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

// verifyFiles checks the input before anything is overwritten.
func verifyFiles(image, verity string, trusted []ed25519.PublicKey) (*slots.Header, bool, error) {
	img, err := os.Open(image)
	if err != nil {
		return nil, false, err
	}
	defer img.Close()
	v, err := os.Open(verity)
	if err != nil {
		return nil, false, err
	}
	defer v.Close()
	h, authenticated, err := slots.VerifyPartition(img, v, trusted)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w: nothing was written", verity, err)
	}
	return h, authenticated, nil
}

// openPartitions opens root-X and verity-X for writing and checks that the
// files fit.
func (j *installJob) openPartitions() error {
	var err error
	if j.rootP, err = j.t.open(j.slot.RootLabel(), true); err != nil {
		return err
	}
	if j.verityP, err = j.t.open(j.slot.VerityLabel(), true); err != nil {
		return err
	}
	if err := fits(j.image, j.rootP); err != nil {
		return err
	}
	return fits(j.verity, j.verityP)
}

// fits checks that file is no larger than the partition.
func fits(file string, p *partition) error {
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	if fi.Size() > p.size {
		return fmt.Errorf("%s: partition is %d bytes, %s is %d bytes: it does not fit", p, p.size, file, fi.Size())
	}
	return nil
}

// writeAndVerify copies both files, syncs, and verifies the partitions as
// the init will read them.
func (j *installJob) writeAndVerify() (*slots.Header, bool, error) {
	n, err := copyInto(j.image, j.rootP)
	if err != nil {
		return nil, false, err
	}
	m, err := copyInto(j.verity, j.verityP)
	if err != nil {
		return nil, false, err
	}
	if err := j.rootP.dropCache(n); err != nil {
		return nil, false, err
	}
	if err := j.verityP.dropCache(m); err != nil {
		return nil, false, err
	}
	h, authenticated, err := slots.VerifyPartition(j.rootP, j.verityP, j.trusted)
	if err != nil {
		return nil, false, fmt.Errorf("read back %s and %s: %w", j.rootP, j.verityP, err)
	}
	return h, authenticated, nil
}

// copyInto writes file at the start of p and syncs it.
func copyInto(file string, p *partition) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := io.Copy(io.NewOffsetWriter(p, 0), f)
	if err != nil {
		return n, fmt.Errorf("write %s to %s: %w", file, p, err)
	}
	if err := p.Sync(); err != nil {
		return n, fmt.Errorf("sync %s: %w", p, err)
	}
	return n, nil
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
