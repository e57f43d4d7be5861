// SPDX-License-Identifier: Apache-2.0

package watchdog

import (
	"sync"
	"time"
)

// Lease says how long the init may be fed for: a goroutine that fed the
// watchdog unconditionally would hide a hang of the boot itself.
type Lease struct {
	// Human is set while the init waits for someone at the console (a
	// passphrase prompt, the emergency shell): nobody is reset while
	// typing, however long it takes.
	Human bool
	// Until bounds the init's own work otherwise: each phase is bounded
	// (device waits by rd.timeout), so not reaching the next mark in time
	// is a hang, and the watchdog is left to reset the machine.
	Until time.Time
}

// Feeds reports whether the watchdog is fed at now.
func (l Lease) Feeds(now time.Time) bool { return l.Human || now.Before(l.Until) }

// Interval is how often a watchdog with timeout t is fed: four times per
// timeout, so that one late tick on a loaded machine costs nothing.
func Interval(t time.Duration) time.Duration {
	return max(t/4, 100*time.Millisecond)
}

// Feeder feeds a Device from its own goroutine (Run) while the Lease allows,
// and hands it over at the end. The Lease may be set before the device is
// found.
type Feeder struct {
	mu      sync.Mutex
	lease   Lease
	dev     *Device
	every   time.Duration
	starved bool // the last tick did not feed: reported once
	handed  bool // HandOff ran
	quit    chan struct{}
	done    chan struct{}
	// Log reports feeding stopping or failing; never nil after NewFeeder.
	Log func(format string, args ...any)
}

// NewFeeder returns a feeder with no device yet and the given lease.
func NewFeeder(l Lease, log func(format string, args ...any)) *Feeder {
	if log == nil {
		log = func(string, ...any) {}
	}
	return &Feeder{lease: l, Log: log, quit: make(chan struct{}), done: make(chan struct{})}
}

// Set replaces the lease.
func (f *Feeder) Set(l Lease) {
	f.mu.Lock()
	f.lease = l
	f.mu.Unlock()
}

// Lease is the current lease.
func (f *Feeder) Lease() Lease {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lease
}

// Attach gives the feeder its device, running with timeout; start Run next.
func (f *Feeder) Attach(d *Device, timeout time.Duration) {
	f.mu.Lock()
	f.dev, f.every = d, Interval(timeout)
	f.mu.Unlock()
}

// Run feeds the attached device every Interval until HandOff. Run it in a
// goroutine after Attach; without a device it returns at once.
func (f *Feeder) Run() {
	defer close(f.done)
	f.mu.Lock()
	every := f.every
	f.mu.Unlock()
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.quit:
			return
		case now := <-t.C:
			f.Tick(now)
		}
	}
}

// Tick feeds the device if the lease allows it at now, and reports whether
// it did. The first tick the lease refuses is logged: from then on the
// machine resets when the timeout runs out, unless the lease is renewed.
func (f *Feeder) Tick(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dev == nil {
		return false
	}
	if !f.lease.Feeds(now) {
		if !f.starved {
			f.Log("watchdog %s: the init made no progress since %s: no longer feeding it; the machine resets when its timeout runs out",
				f.dev.Path, f.lease.Until.Format(time.TimeOnly))
		}
		f.starved = true
		return false
	}
	f.starved = false
	if err := f.dev.Keepalive(); err != nil {
		f.Log("%v", err)
		return false
	}
	return true
}

// HandOff stops feeding and hands the device over still running
// (Device.HandOff). It returns the device handed over, nil when none was
// attached.
func (f *Feeder) HandOff() (*Device, error) {
	f.mu.Lock()
	d, running, again := f.dev, f.every > 0, f.handed
	f.dev, f.handed = nil, true
	f.mu.Unlock()
	if again {
		return nil, nil
	}
	close(f.quit)
	if running {
		<-f.done
	}
	if d == nil {
		return nil, nil
	}
	return d, d.HandOff()
}
