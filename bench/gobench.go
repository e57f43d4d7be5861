// SPDX-License-Identifier: Apache-2.0

package bench

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// benchSuffix is the -GOMAXPROCS suffix go test appends to benchmark names.
var benchSuffix = regexp.MustCompile(`-\d+$`)

// ParseGoBench reads the MB/s of each benchmark in `go test -bench`
// output, keyed by the name without "Benchmark" and the GOMAXPROCS suffix.
func ParseGoBench(out string) (map[string]float64, error) {
	res := map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := benchSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		for i := 2; i+1 < len(f); i++ {
			if f[i+1] != "MB/s" {
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("go test -bench: %s: MB/s %q: expected a positive number", name, f[i])
			}
			res[name] = v
		}
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("go test -bench: no benchmark line with MB/s in:\n%s", out)
	}
	return res, nil
}

// ParseGoBenchTime reads the ns/op of each benchmark line of `go test
// -bench` output, named without the Benchmark prefix and -N suffix; of
// repeated lines (-count) the last.
func ParseGoBenchTime(out string) (map[string]time.Duration, error) {
	all, err := ParseGoBenchTimes(out)
	res := map[string]time.Duration{}
	for name, ds := range all {
		res[name] = ds[len(ds)-1]
	}
	return res, err
}

// ParseGoBenchTimes is ParseGoBenchTime keeping every line of each
// benchmark (one per -count), in order.
func ParseGoBenchTimes(out string) (map[string][]time.Duration, error) {
	res := map[string][]time.Duration{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || f[3] != "ns/op" {
			continue
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("go test -bench: %s: ns/op %q: expected a positive number", f[0], f[2])
		}
		name := benchSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		res[name] = append(res[name], time.Duration(v))
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("go test -bench: no benchmark line with ns/op in:\n%s", out)
	}
	return res, nil
}
