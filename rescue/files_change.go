// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func dd(s *Shell, args []string, sio stdio) int {
	in, out := "-", "-"
	var bs, count, skipBlocks, seek int64 = 512, -1, 0, 0
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
			skipBlocks, err = parseSize(v)
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
	if err := skip(r, skipBlocks*bs); err != nil {
		return fail(sio, "dd", "skip: %v", err)
	}
	var w io.Writer = sio.out
	var f *os.File
	if out != "-" {
		f, err = openFile(sio.ctx, out, os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fail(sio, "dd", "%v", err)
		}
		defer f.Close()
		if _, err := f.Seek(seek*bs, io.SeekStart); err != nil {
			return fail(sio, "dd", "seek: %v", err)
		}
		w = newStream(sio.ctx, f)
	}
	if count >= 0 {
		r = io.LimitReader(r, count*bs)
	}
	n, err := io.CopyBuffer(w, r, make([]byte, min(bs, 4<<20)))
	if f != nil && err == nil {
		err = f.Sync()
	}
	fmt.Fprintf(sio.err, "%d bytes copied\n", n)
	if err != nil {
		return fail(sio, "dd", "%v", err)
	}
	return 0
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
		if err := copyFile(sio.ctx, src, to); err != nil {
			rc = fail(sio, "cp", "%v", err)
		}
	}
	return rc
}

func copyFile(ctx context.Context, src, dst string) error {
	in, err := openFile(ctx, src, os.O_RDONLY, 0)
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
	out, err := openFile(ctx, dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	r := newStream(ctx, in)
	defer r.release()
	if _, err := io.Copy(newStream(ctx, out), r); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
