// SPDX-License-Identifier: Apache-2.0

package devices

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// kernelGroup is the netlink multicast group the kernel sends uevents to;
// udevd re-broadcasts on group 2, which we do not join.
const kernelGroup = 1

// DefaultRecvBuffer is the socket receive buffer asked for: a burst of
// module loads or a coldplug of many devices must not overflow it.
const DefaultRecvBuffer = 8 << 20

// Netlink receives kernel uevents of the block subsystem.
type Netlink struct {
	f      *os.File
	events chan Uevent
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// NetlinkOptions configure OpenNetlink; the zero value is usable.
type NetlinkOptions struct {
	RecvBuffer int                  // bytes; 0 means DefaultRecvBuffer
	OnOverflow func()               // called when the kernel dropped uevents (ENOBUFS)
	Logf       func(string, ...any) // malformed messages; nil discards
	OnPanic    func(any)            // a panic of the reader; nil lets it go on
}

// OpenNetlink opens a NETLINK_KOBJECT_UEVENT socket bound to the kernel's
// group and starts a reader delivering block-subsystem uevents on Events.
func OpenNetlink(o NetlinkOptions) (*Netlink, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent netlink socket: %w", err)
	}
	if err := setupNetlink(fd, o.RecvBuffer); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking fd given to os.NewFile joins the runtime poller, so the
	// reader parks without a thread and Close wakes it.
	n := &Netlink{f: os.NewFile(uintptr(fd), "uevent-netlink"), events: make(chan Uevent, 64), done: make(chan struct{})}
	n.wg.Add(1)
	go func() {
		defer catchPanic(o.OnPanic)
		n.read(o)
	}()
	return n, nil
}

func setupNetlink(fd, size int) error {
	if size <= 0 {
		size = DefaultRecvBuffer
	}
	// SO_RCVBUFFORCE ignores rmem_max but needs CAP_NET_ADMIN; PID 1 has it,
	// a test run as a user falls back to what rmem_max allows.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
			return fmt.Errorf("uevent netlink: receive buffer of %d bytes: %w", size, err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: kernelGroup}); err != nil {
		return fmt.Errorf("uevent netlink: bind to kernel group %d: %w", kernelGroup, err)
	}
	return nil
}

// Events delivers block uevents, module announcements and the adds of
// devices with a MODALIAS; it is closed when the socket is closed.
func (n *Netlink) Events() <-chan Uevent { return n.events }

// Close stops the reader and closes the socket and the Events channel.
func (n *Netlink) Close() error {
	var err error
	n.once.Do(func() {
		close(n.done)
		err = n.f.Close()
		n.wg.Wait()
	})
	return err
}

func (n *Netlink) read(o NetlinkOptions) {
	defer n.wg.Done()
	defer close(n.events)
	rc, err := n.f.SyscallConn()
	if err != nil {
		logf(o.Logf, "uevent netlink: %v", err)
		return
	}
	buf := make([]byte, 64<<10) // uevents are at most a few KiB
	for {
		msg, err := recvKernel(rc, buf)
		switch {
		case errors.Is(err, unix.ENOBUFS):
			logf(o.Logf, "uevent netlink: receive buffer overflowed, uevents lost")
			if o.OnOverflow != nil {
				o.OnOverflow()
			}
			continue
		case err != nil:
			return // closed
		case msg == nil:
			continue // not from the kernel
		}
		if !n.deliver(msg, o.Logf) {
			return
		}
	}
}

// recvKernel receives one datagram; msg is nil for one not sent by the
// kernel (port id 0), since any process may try to forge uevents.
func recvKernel(rc syscall.RawConn, buf []byte) (msg []byte, err error) {
	var n int
	var from unix.Sockaddr
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
		return nil, nil
	}
	return buf[:n], nil
}

// deliver parses msg and sends block uevents, the module announcements
// (ModuleAdded) and the adds of other devices with a MODALIAS (deviceAdded,
// for Options.OnDevice); false once Close was called.
func (n *Netlink) deliver(msg []byte, lf func(string, ...any)) bool {
	ev, err := ParseUevent(msg)
	if err != nil {
		if !errors.Is(err, ErrUdevMessage) {
			logf(lf, "%v", err)
		}
		return true
	}
	if _, module := ModuleAdded(ev); ev.Subsystem != "block" && !module && !deviceAdded(ev) {
		return true
	}
	select {
	case n.events <- ev:
		return true
	case <-n.done:
		return false
	}
}

func logf(f func(string, ...any), format string, args ...any) {
	if f != nil {
		f(format, args...)
	}
}

// deviceAdded reports an "add" uevent of a device, not a block device,
// that carries a MODALIAS: a device a driver may be loaded for.
func deviceAdded(ev Uevent) bool {
	return ev.Action == "add" && ev.Subsystem != "block" && ev.Env["MODALIAS"] != ""
}
