// SPDX-License-Identifier: Apache-2.0

package unlock

import (
	"fmt"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// LockMemory locks the memory of the process into RAM, what is mapped now
// and what is mapped until release: mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT).
// Key material (a passphrase, the volume key, the Argon2 state) then never
// reaches swap. MCL_ONFAULT locks pages as they are first touched rather
// than filling every new mapping at once: filled at mmap time, the Argon2
// buffer would get 4 KiB pages before hugePagesFor could ask for huge ones,
// and a mapping of memory the boot never touches would cost RAM.
//
// release unlocks the memory and gives what the Go heap no longer uses back
// to the kernel (the kernel keeps locked pages even when asked to drop
// them). It is never nil. LockMemory refuses, and locks nothing, where
// locking future mappings could fail them: without CAP_IPC_LOCK (root)
// under a finite RLIMIT_MEMLOCK, the Go runtime's next heap mapping would
// fail and the process die.
func LockMemory() (release func() error, err error) {
	nothing := func() error { return nil }
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return nothing, fmt.Errorf("locking memory: reading RLIMIT_MEMLOCK: %w", err)
	}
	if os.Geteuid() != 0 && lim.Cur != unix.RLIM_INFINITY {
		return nothing, fmt.Errorf("locking memory: RLIMIT_MEMLOCK is %d KiB and the process is not root, expected root or an unlimited RLIMIT_MEMLOCK", lim.Cur>>10)
	}
	if err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT); err != nil {
		return nothing, fmt.Errorf("locking memory: mlockall: %w", err)
	}
	return func() error {
		err := unix.Munlockall()
		debug.FreeOSMemory()
		if err != nil {
			return fmt.Errorf("unlocking memory: munlockall: %w", err)
		}
		return nil
	}, nil
}
