package rescue

import (
	"bufio"
	"bytes"
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
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
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

// parseSize reads a byte count with an optional k, M or G suffix (powers
// of 1024) or 0x hex.
func parseSize(v string) (int64, error) {
	mult := int64(1)
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
		return 0, fmt.Errorf("%q is not a size (512, 4k, 1M, 0x1000)", v)
	}
	return n * mult, nil
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
	if off > 0 {
		if sk, ok := r.(io.Seeker); ok {
			if _, err := sk.Seek(off, io.SeekStart); err != nil {
				return fail(sio, "hexdump", "seeking to %d: %v", off, err)
			}
		} else if _, err := io.CopyN(io.Discard, r, off); err != nil {
			return fail(sio, "hexdump", "skipping %d bytes: %v", off, err)
		}
	}
	if length >= 0 {
		r = io.LimitReader(r, length)
	}
	if err := dumpHex(sio.out, r, off); err != nil {
		return fail(sio, "hexdump", "%s: %v", file, err)
	}
	return 0
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

func dd(s *Shell, args []string, sio stdio) int {
	in, out := "-", "-"
	var bs, count, skip, seek int64 = 512, -1, 0, 0
	for _, a := range args[1:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return fail(sio, "dd", "%q: expected KEY=VALUE", a)
		}
		var err error
		switch k {
		case "if":
			in = v
		case "of":
			out = v
		case "bs":
			bs, err = parseSize(v)
			if err == nil && bs == 0 {
				err = fmt.Errorf("bs must not be 0")
			}
		case "count":
			count, err = parseSize(v)
		case "skip":
			skip, err = parseSize(v)
		case "seek":
			seek, err = parseSize(v)
		default:
			return fail(sio, "dd", "unknown operand %s (if, of, bs, count, skip, seek)", k)
		}
		if err != nil {
			return fail(sio, "dd", "%s: %v", k, err)
		}
	}
	r, done, err := open(sio, in)
	if err != nil {
		return fail(sio, "dd", "%v", err)
	}
	defer done()
	if skip > 0 {
		if sk, ok := r.(io.Seeker); ok {
			_, err = sk.Seek(skip*bs, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, r, skip*bs)
		}
		if err != nil {
			return fail(sio, "dd", "skip: %v", err)
		}
	}
	var w io.Writer = sio.out
	if out != "-" {
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fail(sio, "dd", "%v", err)
		}
		defer f.Close()
		if _, err := f.Seek(seek*bs, io.SeekStart); err != nil {
			return fail(sio, "dd", "seek: %v", err)
		}
		w = f
	}
	if count >= 0 {
		r = io.LimitReader(r, count*bs)
	}
	n, err := io.CopyBuffer(w, r, make([]byte, min(bs, 4<<20)))
	if f, ok := w.(*os.File); ok && err == nil && out != "-" {
		err = f.Sync()
	}
	fmt.Fprintf(sio.err, "%d bytes copied\n", n)
	if err != nil {
		return fail(sio, "dd", "%v", err)
	}
	return 0
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

func mkdir(s *Shell, args []string, sio stdio) int {
	opt, dirs, err := flags(args, "p")
	if err != nil || len(dirs) == 0 {
		if err == nil {
			err = fmt.Errorf("expected DIR")
		}
		return fail(sio, "mkdir", "%v", err)
	}
	rc := 0
	for _, d := range dirs {
		if opt['p'] {
			err = os.MkdirAll(d, 0o755)
		} else {
			err = os.Mkdir(d, 0o755)
		}
		if err != nil {
			rc = fail(sio, "mkdir", "%v", err)
		}
	}
	return rc
}

func rm(s *Shell, args []string, sio stdio) int {
	opt, paths, err := flags(args, "rf")
	if err != nil || (len(paths) == 0 && !opt['f']) {
		if err == nil {
			err = fmt.Errorf("expected PATH")
		}
		return fail(sio, "rm", "%v", err)
	}
	rc := 0
	for _, p := range paths {
		if filepath.Clean(p) == "/" {
			rc = fail(sio, "rm", "refusing to remove /")
			continue
		}
		if opt['r'] {
			err = os.RemoveAll(p)
		} else {
			err = os.Remove(p)
		}
		if err != nil && !(opt['f'] && os.IsNotExist(err)) {
			rc = fail(sio, "rm", "%v", err)
		}
	}
	return rc
}

func mv(s *Shell, args []string, sio stdio) int {
	if len(args) != 3 {
		return fail(sio, "mv", "expected SRC DST")
	}
	dst := args[2]
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		dst = filepath.Join(dst, filepath.Base(args[1]))
	}
	if err := os.Rename(args[1], dst); err != nil {
		return fail(sio, "mv", "%v", err)
	}
	return 0
}

func ln(s *Shell, args []string, sio stdio) int {
	opt, rest, err := flags(args, "s")
	if err != nil || len(rest) != 2 {
		if err == nil {
			err = fmt.Errorf("expected TARGET LINK")
		}
		return fail(sio, "ln", "%v", err)
	}
	if opt['s'] {
		err = os.Symlink(rest[0], rest[1])
	} else {
		err = os.Link(rest[0], rest[1])
	}
	if err != nil {
		return fail(sio, "ln", "%v", err)
	}
	return 0
}

func cp(s *Shell, args []string, sio stdio) int {
	if len(args) < 3 {
		return fail(sio, "cp", "expected SRC… DST")
	}
	srcs, dst := args[1:len(args)-1], args[len(args)-1]
	fi, err := os.Stat(dst)
	intoDir := err == nil && fi.IsDir()
	if len(srcs) > 1 && !intoDir {
		return fail(sio, "cp", "%s: expected a directory for several sources", dst)
	}
	rc := 0
	for _, src := range srcs {
		to := dst
		if intoDir {
			to = filepath.Join(dst, filepath.Base(src))
		}
		if err := copyFile(src, to); err != nil {
			rc = fail(sio, "cp", "%v", err)
		}
	}
	return rc
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory (cp copies files)", src)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
