// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func cat(s *Shell, args []string, sio stdio) int {
	return eachInput(sio, "cat", args[1:], func(r io.Reader, _ string) error {
		_, err := io.Copy(sio.out, r)
		return err
	})
}

func grep(s *Shell, args []string, sio stdio) int {
	opt, rest, err := flags(args, "civn")
	if err != nil || len(rest) == 0 {
		if err == nil {
			err = fmt.Errorf("expected TEXT [FILE…]")
		}
		return fail(sio, "grep", "%v", err)
	}
	text, files := rest[0], rest[1:]
	if opt['i'] {
		text = strings.ToLower(text)
	}
	found := false
	rc := eachInput(sio, "grep", files, func(r io.Reader, file string) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		count := 0
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			hay := line
			if opt['i'] {
				hay = strings.ToLower(line)
			}
			if strings.Contains(hay, text) == opt['v'] {
				continue
			}
			found = true
			count++
			if opt['c'] {
				continue
			}
			prefix := ""
			if len(files) > 1 {
				prefix = file + ":"
			}
			if opt['n'] {
				prefix += strconv.Itoa(n) + ":"
			}
			fmt.Fprintln(sio.out, prefix+line)
		}
		if opt['c'] {
			if len(files) > 1 {
				fmt.Fprintf(sio.out, "%s:", file)
			}
			fmt.Fprintln(sio.out, count)
		}
		return sc.Err()
	})
	switch {
	case rc != 0:
		return 2
	case !found:
		return 1
	}
	return 0
}

func head(s *Shell, args []string, sio stdio) int {
	n := 10
	rest := args[1:]
	if len(rest) >= 2 && rest[0] == "-n" {
		v, err := strconv.Atoi(rest[1])
		if err != nil || v < 0 {
			return fail(sio, "head", "-n %q: expected a number of lines", rest[1])
		}
		n, rest = v, rest[2:]
	}
	return eachInput(sio, "head", rest, func(r io.Reader, _ string) error {
		br := bufio.NewReader(r)
		for i := 0; i < n; i++ {
			line, err := br.ReadString('\n')
			fmt.Fprint(sio.out, line)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func hexdump(s *Shell, args []string, sio stdio) int {
	var off, length int64 = 0, -1
	var file string
	rest := args[1:]
	for len(rest) > 0 {
		a := rest[0]
		switch {
		case a == "-C":
			rest = rest[1:]
		case (a == "-s" || a == "-n") && len(rest) > 1:
			v, err := parseSize(rest[1])
			if err != nil {
				return fail(sio, "hexdump", "%s: %v", a, err)
			}
			if a == "-s" {
				off = v
			} else {
				length = v
			}
			rest = rest[2:]
		case file == "" && !strings.HasPrefix(a, "-") || a == "-":
			file, rest = a, rest[1:]
		default:
			return fail(sio, "hexdump", "unexpected %q (usage: hexdump [-C] [-s OFFSET] [-n LENGTH] [FILE])", a)
		}
	}
	if file == "" {
		file = "-"
	}
	r, done, err := open(sio, file)
	if err != nil {
		return fail(sio, "hexdump", "%v", err)
	}
	defer done()
	if err := skip(r, off); err != nil {
		return fail(sio, "hexdump", "%v", err)
	}
	if length >= 0 {
		r = io.LimitReader(r, length)
	}
	if err := dumpHex(sio.out, bufio.NewReaderSize(r, chunk), off); err != nil {
		return fail(sio, "hexdump", "%s: %v", file, err)
	}
	return 0
}

// skip moves r past its first n bytes: by seeking, or, where the file
// cannot seek (a pipe, a FIFO, an efivarfs variable: ESPIPE), by reading
// them.
func skip(r io.Reader, n int64) error {
	if n <= 0 {
		return nil
	}
	if sk, ok := r.(io.Seeker); ok {
		_, err := sk.Seek(n, io.SeekStart)
		if err == nil || !errors.Is(err, syscall.ESPIPE) {
			if err != nil {
				return fmt.Errorf("seeking to %d: %w", n, err)
			}
			return nil
		}
	}
	if _, err := io.CopyN(io.Discard, r, n); err != nil {
		return fmt.Errorf("skipping %d bytes: %w", n, err)
	}
	return nil
}

// dumpHex writes r in hexdump -C's canonical format, lines that repeat the
// previous one collapsed into "*".
func dumpHex(w io.Writer, r io.Reader, off int64) error {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	line := make([]byte, 16)
	var prev []byte
	starred := false
	for {
		n, err := io.ReadFull(r, line)
		if n > 0 {
			if n == 16 && prev != nil && bytes.Equal(prev, line) {
				if !starred {
					bw.WriteString("*\n")
					starred = true
				}
			} else {
				starred = false
				fmt.Fprintf(bw, "%08x ", off)
				for i := 0; i < 16; i++ {
					if i == 8 {
						bw.WriteByte(' ')
					}
					if i < n {
						fmt.Fprintf(bw, " %02x", line[i])
					} else {
						bw.WriteString("   ")
					}
				}
				bw.WriteString("  |")
				for _, c := range line[:n] {
					if c < 32 || c > 126 {
						c = '.'
					}
					bw.WriteByte(c)
				}
				bw.WriteString("|\n")
			}
			prev = append(prev[:0], line[:n]...)
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			fmt.Fprintf(bw, "%08x\n", off)
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func ls(s *Shell, args []string, sio stdio) int {
	opt, paths, err := flags(args, "la")
	if err != nil {
		return fail(sio, "ls", "%v", err)
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	rc := 0
	for i, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			rc = fail(sio, "ls", "%v", err)
			continue
		}
		if !fi.IsDir() {
			lsEntry(sio.out, filepath.Dir(p), p, fi, opt['l'])
			continue
		}
		if len(paths) > 1 {
			if i > 0 {
				fmt.Fprintln(sio.out)
			}
			fmt.Fprintf(sio.out, "%s:\n", p)
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			rc = fail(sio, "ls", "%v", err)
		}
		sort.Slice(ents, func(a, b int) bool { return ents[a].Name() < ents[b].Name() })
		for _, e := range ents {
			if !opt['a'] && strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			lsEntry(sio.out, p, e.Name(), info, opt['l'])
		}
	}
	return rc
}

func lsEntry(w io.Writer, dir, name string, fi fs.FileInfo, long bool) {
	if !long {
		fmt.Fprintln(w, name)
		return
	}
	size := strconv.FormatInt(fi.Size(), 10)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0 {
		size = fmt.Sprintf("%d, %d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	target := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		path := name
		if !filepath.IsAbs(name) {
			path = filepath.Join(dir, name)
		}
		if t, err := os.Readlink(path); err == nil {
			target = " -> " + t
		}
	}
	fmt.Fprintf(w, "%s %10s %s%s\n", fi.Mode(), size, name, target)
}
