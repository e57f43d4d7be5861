// SPDX-License-Identifier: Apache-2.0

package vm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// NBDDisk serves a raw image to QEMU over the NBD protocol on a unix
// socket, so that a test decides how the guest's disk answers: a read
// for which Stall returns true is never answered (a dead disk or a backend
// that hangs: virtio-blk in Linux 6.1 never times a request out), nor is
// anything after it on that connection. Attach it with Drive. It speaks
// the fixed newstyle handshake with NBD_OPT_GO or NBD_OPT_EXPORT_NAME and
// simple replies (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md),
// which is all QEMU's client needs.
type NBDDisk struct {
	Path string // the image served
	Sock string // the unix socket QEMU connects to

	mu    sync.Mutex
	stall func(off, n int64) bool
	// Stalled receives the offset of each read stalled, without blocking
	// (capacity 16; later ones are dropped).
	Stalled chan int64
	ln      net.Listener
	done    chan struct{}
}

// ServeNBD serves the image at path until the test ends.
func ServeNBD(t testing.TB, path string) *NBDDisk {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("NBD server: %v", err)
	}
	d := &NBDDisk{Path: path, Sock: sock, Stalled: make(chan int64, 16), ln: ln, done: make(chan struct{})}
	go d.accept()
	t.Cleanup(func() {
		close(d.done)
		_ = ln.Close()
	})
	return d
}

// Stall sets which reads are never answered (nil: none), for the
// connections made from now on and the requests still to come.
func (d *NBDDisk) Stall(f func(off, n int64) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stall = f
}

// Drive is the QEMU option that attaches the served image as the next
// virtio disk.
func (d *NBDDisk) Drive() []string {
	return []string{"-drive", "driver=nbd,server.type=unix,server.path=" + d.Sock + ",if=virtio,cache=writethrough"}
}

func (d *NBDDisk) accept() {
	for {
		c, err := d.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = d.serve(c)
		}()
	}
}

// NBD protocol constants (proto.md).
const (
	nbdMagic          = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic       = 0x49484156454f5054 // "IHAVEOPT"
	nbdRepMagic       = 0x3e889045565a9
	nbdReqMagic       = 0x25609513
	nbdSimpleReply    = 0x67446698
	nbdFixedNewstyle  = 1 << 0
	nbdNoZeroes       = 1 << 1
	nbdOptExportName  = 1
	nbdOptAbort       = 2
	nbdOptInfo        = 6
	nbdOptGo          = 7
	nbdRepAck         = 1
	nbdRepInfo        = 3
	nbdRepErrUnsup    = 1<<31 + 1
	nbdInfoExport     = 0
	nbdFlagHasFlags   = 1 << 0
	nbdFlagSendFlush  = 1 << 2
	nbdCmdRead        = 0
	nbdCmdWrite       = 1
	nbdCmdDisc        = 2
	nbdCmdFlush       = 3
	nbdEIO            = 5
	nbdEINVAL         = 22
	nbdMaxRequestSize = 32 << 20
)

var be = binary.BigEndian

// serve runs one connection: the handshake, then requests in order.
func (d *NBDDisk) serve(c net.Conn) error {
	f, err := os.OpenFile(d.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if ok, err := d.handshake(c, size); err != nil || !ok {
		return err
	}
	var hdr [28]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		if be.Uint32(hdr[0:]) != nbdReqMagic {
			return fmt.Errorf("NBD request magic %#x", be.Uint32(hdr[0:]))
		}
		typ, handle := be.Uint16(hdr[6:]), be.Uint64(hdr[8:])
		off, n := int64(be.Uint64(hdr[16:])), int64(be.Uint32(hdr[24:]))
		var data []byte
		errno := uint32(0)
		switch {
		case typ == nbdCmdDisc:
			return nil
		case (typ == nbdCmdRead || typ == nbdCmdWrite) && (n > nbdMaxRequestSize || off < 0 || off+n > size):
			errno = nbdEINVAL
			if typ == nbdCmdWrite {
				return fmt.Errorf("NBD write of %d bytes at %d past the image", n, off)
			}
		case typ == nbdCmdRead:
			if d.stalls(off, n) {
				select {
				case d.Stalled <- off:
				default:
				}
				<-d.done // never answered: the test ends first
				return nil
			}
			data = make([]byte, n)
			if _, err := f.ReadAt(data, off); err != nil {
				errno, data = nbdEIO, nil
			}
		case typ == nbdCmdWrite:
			buf := make([]byte, n)
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
			if _, err := f.WriteAt(buf, off); err != nil {
				errno = nbdEIO
			}
		case typ == nbdCmdFlush:
			if err := f.Sync(); err != nil {
				errno = nbdEIO
			}
		default:
			errno = nbdEINVAL
		}
		var rep [16]byte
		be.PutUint32(rep[0:], nbdSimpleReply)
		be.PutUint32(rep[4:], errno)
		be.PutUint64(rep[8:], handle)
		if _, err := c.Write(append(rep[:], data...)); err != nil {
			return err
		}
	}
}

func (d *NBDDisk) stalls(off, n int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stall != nil && d.stall(off, n)
}

// handshake negotiates the export (any name) of size bytes; false when
// the client gave up.
func (d *NBDDisk) handshake(c net.Conn, size int64) (bool, error) {
	var b [18]byte
	be.PutUint64(b[0:], nbdMagic)
	be.PutUint64(b[8:], nbdOptMagic)
	be.PutUint16(b[16:], nbdFixedNewstyle|nbdNoZeroes)
	if _, err := c.Write(b[:]); err != nil {
		return false, err
	}
	var cflags [4]byte
	if _, err := io.ReadFull(c, cflags[:]); err != nil {
		return false, err
	}
	noZeroes := be.Uint32(cflags[:])&nbdNoZeroes != 0
	const tflags = nbdFlagHasFlags | nbdFlagSendFlush
	for {
		var opt [16]byte
		if _, err := io.ReadFull(c, opt[:]); err != nil {
			return false, err
		}
		if be.Uint64(opt[0:]) != nbdOptMagic {
			return false, errors.New("NBD option magic")
		}
		o, n := be.Uint32(opt[8:]), be.Uint32(opt[12:])
		if n > 4096 {
			return false, fmt.Errorf("NBD option %d of %d bytes", o, n)
		}
		if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
			return false, err
		}
		switch o {
		case nbdOptExportName:
			r := make([]byte, 10, 134)
			be.PutUint64(r[0:], uint64(size))
			be.PutUint16(r[8:], tflags)
			if !noZeroes {
				r = r[:134]
			}
			_, err := c.Write(r)
			return err == nil, err
		case nbdOptAbort:
			return false, nil
		case nbdOptInfo, nbdOptGo:
			info := make([]byte, 12)
			be.PutUint16(info[0:], nbdInfoExport)
			be.PutUint64(info[2:], uint64(size))
			be.PutUint16(info[10:], tflags)
			if err := optReply(c, o, nbdRepInfo, info); err != nil {
				return false, err
			}
			if err := optReply(c, o, nbdRepAck, nil); err != nil {
				return false, err
			}
			if o == nbdOptGo {
				return true, nil
			}
		default:
			if err := optReply(c, o, nbdRepErrUnsup, nil); err != nil {
				return false, err
			}
		}
	}
}

func optReply(c net.Conn, opt, typ uint32, data []byte) error {
	r := make([]byte, 20, 20+len(data))
	be.PutUint64(r[0:], nbdRepMagic)
	be.PutUint32(r[8:], opt)
	be.PutUint32(r[12:], typ)
	be.PutUint32(r[16:], uint32(len(data)))
	_, err := c.Write(append(r, data...))
	return err
}

// ExpectStall waits until v's guest has sent a read that the disk does not
// answer, and returns its offset; it fails the test when QEMU exits first
// or the timeout passes.
func (d *NBDDisk) ExpectStall(v *VM) int64 {
	v.t.Helper()
	select {
	case off := <-d.Stalled:
		return off
	case <-v.done:
		v.fail("a read the NBD disk does not answer", errExited)
	case <-time.After(v.timeout):
		v.fail("a read the NBD disk does not answer", fmt.Errorf("none after %v", v.timeout))
	}
	return 0
}
