// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// fileBuiltins are the file commands: those that only read are in
// files_read.go, those that change files or devices in files_change.go;
// this file has what both use.
func fileBuiltins() map[string]builtin {
	return map[string]builtin{
		"cat":     {run: cat, usage: "cat [FILE…]: print files (- or none: standard input)"},
		"cp":      {run: cp, usage: "cp SRC… DST: copy files"},
		"dd":      {run: dd, usage: "dd [if=F] [of=F] [bs=N] [count=N] [skip=N] [seek=N]: copy blocks (N: 512, 4k, 1M)"},
		"grep":    {run: grep, usage: "grep [-civn] TEXT [FILE…]: lines containing TEXT (a fixed string, not a regexp)"},
		"head":    {run: head, usage: "head [-n N] [FILE…]: the first N (10) lines"},
		"hexdump": {run: hexdump, usage: "hexdump [-C] [-s OFFSET] [-n LENGTH] [FILE]: bytes in hex and ASCII"},
		"ln":      {run: ln, usage: "ln [-s] TARGET LINK: make a (symbolic) link"},
		"ls":      {run: ls, usage: "ls [-la] [PATH…]: list directories (-l: type, mode, size or device, link target)"},
		"mkdir":   {run: mkdir, usage: "mkdir [-p] DIR…: make directories"},
		"mv":      {run: mv, usage: "mv SRC DST: rename"},
		"rm":      {run: rm, usage: "rm [-rf] PATH…: remove files (-r: directories too)"},
	}
}

// open opens a command's input file; "-" is standard input.
func open(sio stdio, name string) (io.Reader, func(), error) {
	if name == "-" {
		return sio.in, func() {}, nil
	}
	f, err := openFile(sio.ctx, name, os.O_RDONLY, 0)
	if err != nil {
		return nil, nil, err
	}
	st := newStream(sio.ctx, f)
	return st, func() { st.release(); f.Close() }, nil
}

// eachInput calls fn for every named file, or standard input when none.
func eachInput(sio stdio, name string, files []string, fn func(r io.Reader, file string) error) int {
	if len(files) == 0 {
		files = []string{"-"}
	}
	rc := 0
	for _, f := range files {
		r, done, err := open(sio, f)
		if err != nil {
			rc = fail(sio, name, "%v", err)
			continue
		}
		if err := fn(r, f); err != nil {
			rc = fail(sio, name, "%s: %v", f, err)
		}
		done()
	}
	return rc
}

// parseSize reads a byte count with an optional k, M or G suffix (powers
// of 1024) or 0x hex.
func parseSize(v string) (int64, error) {
	given, mult := v, int64(1)
	switch {
	case strings.HasSuffix(v, "k") || strings.HasSuffix(v, "K"):
		mult, v = 1<<10, v[:len(v)-1]
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, v[:len(v)-1]
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (512, 4k, 1M, 0x1000)", given)
	}
	return n * mult, nil
}
