// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Shell is one interpreter: its variables, working directory (the
// process's) and last exit status.
type Shell struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Root is prefixed to the absolute paths of keel's own files (the boot
	// report, the baked configuration, modules); tests point it elsewhere.
	Root string

	noGlob   bool // fuzzing: expansions must not walk the file system
	vars     map[string]string
	status   int
	exited   bool
	builtins map[string]builtin

	mu     sync.Mutex         // guards cancel, which Interrupt calls from another goroutine
	cancel context.CancelFunc // the pipeline in the foreground's
}

// stdio are a command's standard streams, and its context, which Ctrl-C
// cancels.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	ctx      context.Context
}

// New makes a shell on the process's standard streams with the process's
// environment as its variables.
func New() *Shell {
	s := &Shell{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, vars: map[string]string{}}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && validName(k) {
			s.vars[k] = v
		}
	}
	s.builtins = builtins()
	return s
}

// Get returns a variable; "?" is the last exit status.
func (s *Shell) Get(name string) string {
	if name == "?" {
		return strconv.Itoa(s.status)
	}
	return s.vars[name]
}

// Set sets a variable.
func (s *Shell) Set(name, value string) { s.vars[name] = value }

// Status is the exit status of the last command.
func (s *Shell) Status() int { return s.status }

// Exited reports whether the exit builtin ran.
func (s *Shell) Exited() bool { return s.exited }

// Interactive reads commands from Stdin until exit or end of input, with
// prompt before each command and "> " before continuation lines. It
// returns the exit status.
func (s *Shell) Interactive(prompt string) int {
	r := bufio.NewReader(s.Stdin)
	pending := ""
	for !s.exited {
		if pending == "" {
			fmt.Fprint(s.Stdout, prompt)
		} else {
			fmt.Fprint(s.Stdout, "> ")
		}
		line, err := r.ReadString('\n')
		if line == "" && err != nil {
			if pending != "" {
				fmt.Fprintln(s.Stderr, "sh: end of input inside an incomplete command")
			}
			fmt.Fprintln(s.Stdout)
			break
		}
		pending += line
		l, perr := Parse(pending)
		if errors.Is(perr, ErrIncomplete) && err == nil {
			continue
		}
		pending = ""
		if perr != nil {
			fmt.Fprintf(s.Stderr, "sh: %v\n", perr)
			s.status = 2
			continue
		}
		s.runList(l)
	}
	return s.status
}

// Run parses and runs one line, returning its exit status.
func (s *Shell) Run(line string) int {
	l, err := Parse(line)
	if err != nil {
		fmt.Fprintf(s.Stderr, "sh: %v\n", err)
		s.status = 2
		return s.status
	}
	s.runList(l)
	return s.status
}

func (s *Shell) runList(l list) {
	for _, ao := range l {
		if s.exited {
			return
		}
		if (ao.op == "&&" && s.status != 0) || (ao.op == "||" && s.status == 0) {
			continue
		}
		ctx, end := s.foreground()
		s.status = s.runPipeline(ao.pipe, ctx)
		end()
		if ctx.Err() != nil && s.status > 128 {
			return // Ctrl-C ends the line, as in sh: sleep 60; reboot
		}
	}
}

// runPipeline runs the commands at once, each one's output piped into the
// next one's input, and returns the last one's status.
func (s *Shell) runPipeline(p pipeline, ctx context.Context) int {
	if len(p) == 1 {
		return s.runCommand(p[0], stdio{s.Stdin, s.Stdout, s.Stderr, ctx}, true)
	}
	statuses := make([]int, len(p))
	var wg sync.WaitGroup
	in := s.Stdin
	for i, c := range p {
		sio := stdio{in, s.Stdout, s.Stderr, ctx}
		var w *os.File
		if i < len(p)-1 {
			r, pw, err := os.Pipe()
			if err != nil {
				fmt.Fprintf(s.Stderr, "sh: pipe: %v\n", err)
				return 1
			}
			sio.out, w, in = pw, pw, r
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = s.runCommand(c, sio, false)
			if w != nil {
				w.Close()
			}
			if r, ok := sio.in.(*os.File); ok && i > 0 {
				r.Close()
			}
		}()
	}
	wg.Wait()
	return statuses[len(p)-1]
}

// runCommand expands and runs one command. main is false inside a
// pipeline, where assignments and cd/exit do not affect the shell (they
// would in a subshell neither).
func (s *Shell) runCommand(c command, sio stdio, main bool) (status int) {
	// A bug in a built-in must not end the shell: the operator would be
	// dropped out of the only way into the machine.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(sio.err, "sh: internal error: %v\n", r)
			status = 70
		}
	}()
	words := c.words
	env := map[string]string{}
	for len(words) > 0 {
		name, val, ok := assignment(words[0])
		if !ok {
			break
		}
		v, err := s.expandJoined(val)
		if err != nil {
			fmt.Fprintf(sio.err, "sh: %v\n", err)
			return 1
		}
		env[name] = v
		words = words[1:]
	}
	args, err := s.expand(words)
	if err != nil {
		fmt.Fprintf(sio.err, "sh: %v\n", err)
		return 1
	}
	closers, err := s.redirect(c.redirs, &sio)
	defer func() {
		for _, f := range closers {
			f.Close()
		}
	}()
	if err != nil {
		fmt.Fprintf(sio.err, "sh: %v\n", err)
		return interrupted(sio.ctx, 1)
	}
	if len(args) == 0 {
		if main {
			for k, v := range env {
				s.vars[k] = v
			}
		}
		return 0
	}
	if b, ok := s.builtins[args[0]]; ok {
		if !main && b.shellState {
			fmt.Fprintf(sio.err, "sh: %s: has no effect in a pipeline\n", args[0])
			return 1
		}
		if len(env) > 0 && !main {
			fmt.Fprintf(sio.err, "sh: %s: assignments before a built-in have no effect in a pipeline\n", args[0])
			return 1
		}
		// Assignments before a built-in hold while it runs, as for a program.
		saved := map[string]*string{}
		for k, v := range env {
			if old, ok := s.vars[k]; ok {
				saved[k] = &old
			} else {
				saved[k] = nil
			}
			s.vars[k] = v
		}
		defer func() {
			for k, old := range saved {
				if old == nil {
					delete(s.vars, k)
				} else {
					s.vars[k] = *old
				}
			}
		}()
		// Its reads and writes end on Ctrl-C; its errors are still said.
		if sio.in != nil {
			in := newStream(sio.ctx, sio.in)
			defer in.release()
			sio.in = in
		}
		sio.out = newStream(sio.ctx, sio.out)
		return interrupted(sio.ctx, b.run(s, args, sio))
	}
	return s.external(args, env, sio, nil)
}

// assignment splits NAME=value in a word whose NAME is literal and unquoted.
func assignment(w word) (string, word, bool) {
	if len(w) == 0 || w[0].kind != lit || w[0].quoted {
		return "", nil, false
	}
	name, rest, ok := strings.Cut(w[0].text, "=")
	if !ok || !validName(name) {
		return "", nil, false
	}
	val := append(word{{kind: lit, text: rest}}, w[1:]...)
	return name, val, true
}

// expandJoined expands a word without field splitting or globbing, as the
// value of an assignment.
func (s *Shell) expandJoined(w word) (string, error) {
	q := make(word, len(w))
	for i, pt := range w {
		pt.quoted = true
		q[i] = pt
	}
	f, err := s.expandWord(q)
	return strings.Join(f, ""), err
}

// redirect opens the redirections' files and points io's streams at them.
// It returns the files to close after the command.
func (s *Shell) redirect(rs []redir, sio *stdio) ([]*os.File, error) {
	var opened []*os.File
	for _, r := range rs {
		if r.op == ">&" {
			t, _ := r.target.literal()
			switch {
			case r.fd == 2 && t == "1":
				sio.err = sio.out
			case r.fd == 1 && t == "2":
				sio.out = sio.err
			}
			continue
		}
		name, err := s.expandJoined(r.target)
		if err != nil {
			return opened, err
		}
		flag := os.O_RDONLY
		switch r.op {
		case ">":
			flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		case ">>":
			flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
		}
		f, err := openFile(sio.ctx, name, flag, 0o644)
		if err != nil {
			return opened, err
		}
		opened = append(opened, f)
		switch r.fd {
		case 0:
			sio.in = f
		case 1:
			sio.out = f
		case 2:
			sio.err = f
		}
	}
	return opened, nil
}

// environ is the environment of a program: the shell's variables with the
// command's assignments over them.
func (s *Shell) environ(extra map[string]string) []string {
	m := make(map[string]string, len(s.vars)+len(extra))
	for k, v := range s.vars {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// lookPath finds a program in PATH; a name with a slash is taken as is.
func (s *Shell) lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range strings.Split(s.Get("PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found (help lists the built-in commands)", name)
}

// external runs a program and waits for it. Streams that are not files
// (pipes between built-ins, test buffers) are connected through pipes.
func (s *Shell) external(args []string, env map[string]string, sio stdio, sys *syscall.SysProcAttr) int {
	path, err := s.lookPath(args[0])
	if sys != nil && sys.Chroot != "" {
		path, err = lookPathIn(sys.Chroot, args[0])
	}
	if err != nil {
		fmt.Fprintf(sio.err, "sh: %v\n", err)
		return 127
	}
	var copies sync.WaitGroup
	var toClose []*os.File
	files := make([]*os.File, 3)
	for i, st := range []any{unwrap(sio.in), unwrap(sio.out), unwrap(sio.err)} {
		if f, ok := st.(*os.File); ok {
			files[i] = f
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Fprintf(sio.err, "sh: pipe: %v\n", err)
			return 1
		}
		copies.Add(1)
		if i == 0 {
			files[i] = r
			toClose = append(toClose, r)
			go func() {
				defer copies.Done()
				defer w.Close()
				if st != nil {
					_, _ = io.Copy(w, st.(io.Reader))
				}
			}()
		} else {
			files[i] = w
			toClose = append(toClose, w)
			go func() {
				defer copies.Done()
				defer r.Close()
				_, _ = io.Copy(st.(io.Writer), r)
			}()
		}
	}
	attr := &os.ProcAttr{Env: s.environ(env), Files: files, Sys: sys}
	if sys != nil && sys.Chroot != "" {
		attr.Dir = "/"
	}
	p, err := os.StartProcess(path, args, attr)
	for _, f := range toClose {
		f.Close()
	}
	if err != nil {
		copies.Wait()
		fmt.Fprintf(sio.err, "sh: %s: %v\n", args[0], err)
		return 126
	}
	st, err := p.Wait()
	copies.Wait()
	if err != nil {
		fmt.Fprintf(sio.err, "sh: %s: %v\n", args[0], err)
		return 1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// lookPathIn finds a program for chroot: an absolute path as it is, a bare
// name in the usual directories under root. The path returned is the one
// inside root.
func lookPathIn(root, name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		if _, err := os.Stat(root + name); err != nil {
			return "", err
		}
		return name, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if fi, err := os.Stat(root + dir + "/" + name); err == nil && fi.Mode().IsRegular() {
			return dir + "/" + name, nil
		}
	}
	return "", fmt.Errorf("%s: not found in %s", name, root)
}
