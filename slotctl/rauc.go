// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/keel-boot/keel/bootstate"
	"github.com/keel-boot/keel/slots"
)

// raucBackendName is the name under which slotctl acts as RAUC's custom
// bootloader backend without arguments of its own: RAUC runs
// `bootloader-custom-backend` as a program, never through a shell, so
// system.conf names a symlink to slotctl (docs/rauc.md).
const raucBackendName = "keel-rauc-backend"

// raucTriesEnv sets how many boots a slot RAUC activates gets to be marked
// good (set-primary); bootstate.DefaultTries when unset.
const raucTriesEnv = "KEEL_RAUC_TRIES"

// raucCall is one call of RAUC's custom bootloader backend interface (RAUC
// docs/integration.rst, "Custom bootloader backend interface"; src/
// bootchooser.c in RAUC 1.8, src/bootloaders/custom.c later).
type raucCall struct {
	op   string     // get-primary, set-primary, get-state, set-state, get-current
	slot slots.Slot // the bootname, for the calls that take one
	good bool       // set-state: good (true) or bad
}

// raucOps is each call and the arguments it takes after its name.
var raucOps = map[string]string{
	"get-primary": "",
	"get-current": "",
	"set-primary": "SLOT",
	"get-state":   "SLOT",
	"set-state":   "SLOT good|bad",
}

// parseRaucCall parses the arguments RAUC passes: the call, then the
// slot's bootname (a or b), then for set-state the state.
func parseRaucCall(args []string) (raucCall, error) {
	if len(args) == 0 {
		return raucCall{}, usagef("expected a RAUC backend call: get-primary, set-primary SLOT, get-state SLOT, set-state SLOT good|bad or get-current")
	}
	op := args[0]
	want, ok := raucOps[op]
	if !ok {
		return raucCall{}, usagef("unknown RAUC backend call %q: expected get-primary, set-primary, get-state, set-state or get-current", op)
	}
	n := len(strings.Fields(want))
	if len(args)-1 != n {
		return raucCall{}, usagef("%s takes %d arguments (%s), got %d", op, n, orNothing(want), len(args)-1)
	}
	c := raucCall{op: op}
	if n == 0 {
		return c, nil
	}
	x, err := slots.ParseSlot(args[1])
	if err != nil {
		return raucCall{}, usagef("%s: bootname %q: expected a or b (system.conf: bootname=a, bootname=b)", op, args[1])
	}
	c.slot = x
	if n == 2 {
		switch args[2] {
		case "good":
			c.good = true
		case "bad":
		default:
			return raucCall{}, usagef("set-state %s: state %q: expected good or bad", x, args[2])
		}
	}
	return c, nil
}

func orNothing(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// parseRaucTries parses $KEEL_RAUC_TRIES; empty means the default.
func parseRaucTries(v string) (int, error) {
	if v == "" {
		return bootstate.DefaultTries, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 255 {
		return 0, fmt.Errorf("%s=%q: expected a number of boots from 1 to 255", raucTriesEnv, v)
	}
	return n, nil
}

// raucPrimary is the slot boot counting boots next: what the init would
// choose on the next boot with nothing failing, under its limit of
// unconfirmed boots (maxUnconfirmed, 0: the default).
func raucPrimary(s bootstate.State, maxUnconfirmed int) (slots.Slot, error) {
	return bootsNext(s, maxUnconfirmed)
}

// raucGood is RAUC's boot state of slot x: good when boot counting may
// boot it (priority, and good or tries left; or good at priority 0 as the
// last resort when no slot has a priority, State.Boots) and its verity
// partition holds a valid header; bad otherwise (retired, tries exhausted,
// marked bad, or holding no image). It is the barebox backend's meaning:
// the bootloader will still boot it.
func raucGood(s bootstate.State, x slots.Slot, headerErr error) bool {
	return s.Boots(x) && headerErr == nil
}

// raucSetPrimary makes x boot next. The running slot only gets the top
// priority back, its good flag and its tries as they are (`rauc status
// mark-active booted` cancels an activated update): a running trial keeps
// the tries it has left, since an agent that asserted the booted slot at
// every boot gave a trial that never came up fresh tries each time, and it
// never rolled back (found by a hunting helper); `slotctl set-next`
// refuses the running slot; as set-next does, it ends a restore's mark on
// the other slot (bootstate.ReasonRestoredGood), so that boots of x left
// unconfirmed do not bring that slot back. Any other slot is put on trial with tries
// boots to be marked good, the other slot staying its fallback, unless it
// is the only good slot and still holds its confirmed image (imageID, its
// header's; bootstate.SetNext). It fails unless boot counting then chooses
// x, under the init's limit of unconfirmed boots (maxUnconfirmed):
// set-primary means exactly that.
func raucSetPrimary(s *bootstate.State, x, running slots.Slot, tries int, imageID string, maxUnconfirmed int) error {
	if x == running {
		for i, y := range slots.Slots() {
			switch {
			case y == x:
				s.Slots[i].Priority = 2
			case s.Slots[i].Priority > 0:
				s.Slots[i].Priority = 1
			}
		}
		s.Chosen(x)
	} else if err := s.SetNext(x, tries, imageID); err != nil {
		return err
	}
	next, err := raucPrimary(*s, maxUnconfirmed)
	if err != nil {
		return fmt.Errorf("slot %s would not boot next: %w", x, err)
	}
	if next != x {
		return fmt.Errorf("slot %s would not boot next: boot counting chooses slot %s (%s)", x, next, s.Slot(next))
	}
	return nil
}

// runRaucBackend answers RAUC's custom bootloader backend calls from
// keel's boot state (docs/rauc.md): get-* print one word on stdout, every
// call exits 0 on success and non-zero with the reason on stderr.
func runRaucBackend(e *env, args []string) error {
	fs := newFlags(e, "rauc-backend")
	t := targetFlags(e, fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	c, err := parseRaucCall(pos)
	if err != nil {
		return err
	}
	if err := t.raucRun(e, c); err != nil {
		return fmt.Errorf("%s: %w", c, err) // RAUC logs only the exit code: the journal has this
	}
	return nil
}

// String is the call as RAUC makes it.
func (c raucCall) String() string {
	s := c.op
	if c.slot != "" {
		s += " " + string(c.slot)
	}
	if c.op == "set-state" {
		s += map[bool]string{true: " good", false: " bad"}[c.good]
	}
	return s
}

func (t *target) raucRun(e *env, c raucCall) error {
	switch c.op {
	case "get-primary":
		return t.raucGetPrimary(e)
	case "get-current":
		return t.raucGetCurrent(e)
	case "get-state":
		return t.raucGetState(e, c.slot)
	case "set-state":
		if c.good {
			return t.markGood(e, c.slot)
		}
		return t.raucSetBad(e, c.slot)
	}
	tries, err := parseRaucTries(e.getenv(raucTriesEnv))
	if err != nil {
		return err
	}
	return t.raucSetPrimary(e, c.slot, tries)
}

func (t *target) raucGetPrimary(e *env) error {
	s, err := t.loadState()
	if err != nil {
		return err
	}
	x, err := raucPrimary(s, t.initsLimit())
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, x)
	return nil
}

// raucGetCurrent prints the booted slot from the boot report: RAUC since
// 1.11 asks the backend instead of reading root= on /proc/cmdline, and
// keel's rauc.service drop-in passes it to older ones.
func (t *target) raucGetCurrent(e *env) error {
	x, err := t.running()
	if err != nil {
		return err
	}
	if x == "" {
		r, _ := t.bootReport()
		mode := "none: a disk image"
		if r != nil {
			mode = r.Mode
		}
		return fmt.Errorf("this boot did not come from an A/B slot (boot report mode %q): RAUC has no booted slot to protect and must not run", mode)
	}
	fmt.Fprintln(e.stdout, x)
	return nil
}

func (t *target) raucGetState(e *env, x slots.Slot) error {
	s, err := t.loadState()
	if err != nil {
		return err
	}
	p, err := t.open(x.VerityLabel(), false)
	if err != nil {
		return err
	}
	defer p.Close()
	_, herr := slots.ReadHeader(p)
	if raucGood(s, x, herr) {
		fmt.Fprintln(e.stdout, "good")
	} else {
		fmt.Fprintln(e.stdout, "bad")
	}
	return nil
}

// raucSetBad retires a slot. RAUC calls it on the slot it is about to
// write, before writing anything: refusing the running slot here is what
// keeps a wrong idea of the booted slot from overwriting the running root.
func (t *target) raucSetBad(e *env, x slots.Slot) error {
	if err := t.refuseRunning(x, "mark bad"); err != nil {
		return fmt.Errorf("%w; RAUC marks a slot bad before it writes it, so this also stops an install into the running slot", err)
	}
	if err := t.refuseLastGood(x, "mark bad", false); err != nil {
		return err
	}
	s, err := t.withState(func(s *bootstate.State) error { return s.MarkBad(x, "marked bad by RAUC") })
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "slot %s marked bad (%s)\n", x, s.Slot(x))
	return nil
}

// syncPartition makes a partition's writes durable (tests watch it).
var syncPartition = (*partition).Sync

// flushSlot makes what was written to slot x durable before the boot state
// names it: RAUC's raw handler writes a slot and closes it without a
// flush, and a power cut after the boot state's flushed write would then
// boot a slot whose blocks never reached the disk (dm-verity refuses it:
// the update spends its tries and is retired). fsync of a block device
// flushes the disk's write cache too.
func (t *target) flushSlot(x slots.Slot) error {
	for _, label := range []string{x.RootLabel(), x.VerityLabel()} {
		p, err := t.open(label, false)
		if err != nil {
			return err
		}
		err = syncPartition(p)
		p.Close()
		if err != nil {
			return fmt.Errorf("%s: flushing what was written to it: %w", p, err)
		}
	}
	return nil
}

// raucSetPrimary makes x boot next: a slot RAUC just wrote must hold a
// valid header at or above the rollback floor, as slotctl install checks.
func (t *target) raucSetPrimary(e *env, x slots.Slot, tries int) error {
	run, err := t.running()
	if err != nil {
		return err
	}
	var imageID string
	if x != run {
		h, err := t.slotHeader(x)
		if err != nil {
			return fmt.Errorf("%w: refusing to boot slot %s", err, x)
		}
		imageID = h.ImageID
		s, err := t.loadState()
		if err != nil {
			return err
		}
		err, note := t.belowFloor(h, s.RollbackFloor, fmt.Sprintf("slot %s", x), nil)
		if err != nil {
			return err
		}
		if note != "" {
			fmt.Fprintf(e.stderr, "%s\n", note)
		}
		if err := t.flushSlot(x); err != nil {
			return fmt.Errorf("%w: refusing to boot slot %s", err, x)
		}
	}
	s, err := t.withState(func(s *bootstate.State) error { return raucSetPrimary(s, x, run, tries, imageID, t.initsLimit()) })
	if err != nil {
		return err
	}
	printNext(e, s, x)
	return nil
}
