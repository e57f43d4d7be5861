// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DirtyKiB reads /proc/meminfo's Dirty and Writeback lines ("Dirty:
// 1234 kB"): the data that waits to be written back, in KiB.
func DirtyKiB(meminfo []byte) (uint64, error) {
	var sum uint64
	found := 0
	for _, line := range strings.Split(string(meminfo), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "Dirty" && name != "Writeback") {
			continue
		}
		f := spaceFields(strings.TrimSpace(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("meminfo %s: %q: expected a number of kB", name, rest)
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("meminfo %s: %q: expected a number of kB", name, rest)
		}
		sum += n
		found++
	}
	if found != 2 {
		return 0, errors.New("meminfo: expected Dirty and Writeback lines")
	}
	return sum, nil
}

// WrittenPages reads /proc/vmstat's nr_written: the pages written back
// since boot, a count that only grows.
func WrittenPages(vmstat []byte) (uint64, error) {
	for _, line := range strings.Split(string(vmstat), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || name != "nr_written" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("vmstat nr_written: %q: expected a number of pages", value)
		}
		return n, nil
	}
	return 0, errors.New("vmstat: expected an nr_written line")
}
