// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// builtin is a command the shell runs itself. shellState marks those that
// change the shell (cd, exit, export, unset): they refuse to run inside a
// pipeline, where sh would run them in a subshell to no effect.
type builtin struct {
	run        func(s *Shell, args []string, sio stdio) int
	usage      string
	shellState bool
}

func builtins() map[string]builtin {
	m := map[string]builtin{
		"cd":       {run: cd, usage: "cd [DIR]: change the working directory (default /)", shellState: true},
		"chroot":   {run: chroot, usage: "chroot DIR [PROGRAM ARGS…]: run a program (default /bin/sh) with DIR as /, e.g. chroot /newroot /bin/bash"},
		"echo":     {run: echo, usage: "echo [-n] [ARG…]: print the arguments"},
		"env":      {run: env, usage: "env: print the variables"},
		"exit":     {run: exit, usage: "exit [N]: leave the shell; the boot continues as the message before the prompt said", shellState: true},
		"export":   {run: export, usage: "export NAME[=VALUE]…: set variables (every variable is passed to programs)", shellState: true},
		"false":    {run: func(*Shell, []string, stdio) int { return 1 }, usage: "false: fail"},
		"kill":     {run: kill, usage: "kill [-SIGNAL] PID…: send a signal (TERM by default; KILL, INT, HUP or a number)"},
		"poweroff": {run: halt(unix.LINUX_REBOOT_CMD_POWER_OFF), usage: "poweroff: sync and power off"},
		"ps":       {run: ps, usage: "ps: list processes"},
		"pwd":      {run: pwd, usage: "pwd: print the working directory"},
		"reboot":   {run: halt(unix.LINUX_REBOOT_CMD_RESTART), usage: "reboot: sync and reboot"},
		"sleep":    {run: sleep, usage: "sleep SECONDS: wait (fractions allowed)"},
		"sync":     {run: func(*Shell, []string, stdio) int { unix.Sync(); return 0 }, usage: "sync: flush file systems"},
		"true":     {run: func(*Shell, []string, stdio) int { return 0 }, usage: "true: succeed"},
		"unset":    {run: unset, usage: "unset NAME…: remove variables", shellState: true},
	}
	for k, v := range fileBuiltins() {
		m[k] = v
	}
	for k, v := range systemBuiltins() {
		m[k] = v
	}
	m["help"] = builtin{run: help, usage: "help: this list"}
	return m
}

// fail prints "name: message" on the command's error stream and returns 1.
func fail(sio stdio, name string, format string, args ...any) int {
	fmt.Fprintf(sio.err, "%s: %s\n", name, fmt.Sprintf(format, args...))
	return 1
}

// flags splits leading single-letter options ("-la" is -l -a) from the
// operands; "--" ends them. It fails on a letter not in allowed.
func flags(args []string, allowed string) (map[byte]bool, []string, error) {
	set := map[byte]bool{}
	i := 1
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			if strings.IndexByte(allowed, a[j]) < 0 {
				return nil, nil, fmt.Errorf("unknown option -%c (options: %s)", a[j], optionList(allowed))
			}
			set[a[j]] = true
		}
	}
	return set, args[i:], nil
}

func optionList(allowed string) string {
	if allowed == "" {
		return "none"
	}
	var parts []string
	for i := 0; i < len(allowed); i++ {
		parts = append(parts, "-"+allowed[i:i+1])
	}
	return strings.Join(parts, " ")
}

func help(s *Shell, args []string, sio stdio) int {
	names := make([]string, 0, len(s.builtins))
	for n := range s.builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(sio.out, "keel rescue shell: built-in commands (other names run programs from PATH):")
	for _, n := range names {
		fmt.Fprintf(sio.out, "  %s\n", s.builtins[n].usage)
	}
	fmt.Fprintln(sio.out, "Syntax: quotes, $VAR, $?, $((1+2)), globs, |, ;, &&, ||, <, >, >>, 2>, 2>&1. No if/for/while.")
	return 0
}

func cd(s *Shell, args []string, sio stdio) int {
	dir := "/"
	if h := s.Get("HOME"); h != "" {
		dir = h
	}
	if len(args) > 2 {
		return fail(sio, "cd", "expected one directory, got %d arguments", len(args)-1)
	}
	if len(args) == 2 {
		dir = args[1]
	}
	if err := os.Chdir(dir); err != nil {
		return fail(sio, "cd", "%v", err)
	}
	if wd, err := os.Getwd(); err == nil {
		s.vars["PWD"] = wd
	}
	return 0
}

func pwd(s *Shell, args []string, sio stdio) int {
	wd, err := os.Getwd()
	if err != nil {
		return fail(sio, "pwd", "%v", err)
	}
	fmt.Fprintln(sio.out, wd)
	return 0
}

func echo(s *Shell, args []string, sio stdio) int {
	args = args[1:]
	nl := "\n"
	if len(args) > 0 && args[0] == "-n" {
		nl, args = "", args[1:]
	}
	fmt.Fprint(sio.out, strings.Join(args, " ")+nl)
	return 0
}

func env(s *Shell, args []string, sio stdio) int {
	for _, kv := range s.environ(nil) {
		fmt.Fprintln(sio.out, kv)
	}
	return 0
}

func exit(s *Shell, args []string, sio stdio) int {
	code := s.status
	if len(args) > 1 {
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 || n > 255 {
			return fail(sio, "exit", "%q is not an exit status (0-255)", args[1])
		}
		code = n
	}
	s.exited = true
	return code
}

func export(s *Shell, args []string, sio stdio) int {
	for _, a := range args[1:] {
		name, val, ok := strings.Cut(a, "=")
		if !validName(name) {
			return fail(sio, "export", "%q is not a variable name", name)
		}
		if ok {
			s.vars[name] = val
		} else if _, set := s.vars[name]; !set {
			s.vars[name] = ""
		}
	}
	return 0
}

func unset(s *Shell, args []string, sio stdio) int {
	for _, a := range args[1:] {
		delete(s.vars, a)
	}
	return 0
}

func sleep(s *Shell, args []string, sio stdio) int {
	if len(args) != 2 {
		return fail(sio, "sleep", "expected SECONDS")
	}
	f, err := strconv.ParseFloat(args[1], 64)
	if err != nil || f < 0 || f > 1e6 {
		return fail(sio, "sleep", "%q is not a number of seconds", args[1])
	}
	t := time.NewTimer(time.Duration(f * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return 0
	case <-sio.ctx.Done():
		return fail(sio, "sleep", "%v", errInterrupted)
	}
}

func halt(cmd int) func(*Shell, []string, stdio) int {
	return func(s *Shell, args []string, sio stdio) int {
		unix.Sync()
		if err := unix.Reboot(cmd); err != nil {
			return fail(sio, args[0], "%v", err)
		}
		return 0
	}
}

var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT,
}

func kill(s *Shell, args []string, sio stdio) int {
	sig := syscall.SIGTERM
	args = args[1:]
	if len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name := strings.TrimPrefix(strings.TrimPrefix(args[0], "-"), "SIG")
		if n, err := strconv.Atoi(name); err == nil && n > 0 && n < 65 {
			sig = syscall.Signal(n)
		} else if v, ok := signals[strings.ToUpper(name)]; ok {
			sig = v
		} else {
			return fail(sio, "kill", "unknown signal %s", args[0])
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return fail(sio, "kill", "expected a PID")
	}
	rc := 0
	for _, a := range args {
		pid, err := strconv.Atoi(a)
		if err != nil || pid <= 1 {
			rc = fail(sio, "kill", "%q is not a PID other than 1", a)
			continue
		}
		if err := syscall.Kill(pid, sig); err != nil {
			rc = fail(sio, "kill", "%d: %v", pid, err)
		}
	}
	return rc
}

func ps(s *Shell, args []string, sio stdio) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return fail(sio, "ps", "%v", err)
	}
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	sort.Ints(pids)
	fmt.Fprintln(sio.out, "  PID COMMAND")
	for _, pid := range pids {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		line := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		if line == "" {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			line = "[" + strings.TrimSpace(string(comm)) + "]"
		}
		fmt.Fprintf(sio.out, "%5d %s\n", pid, line)
	}
	return 0
}

func chroot(s *Shell, args []string, sio stdio) int {
	if len(args) < 2 {
		return fail(sio, "chroot", "expected DIR [PROGRAM ARGS…]")
	}
	dir, prog := args[1], args[2:]
	if len(prog) == 0 {
		prog = []string{"/bin/sh"}
	}
	return s.external(prog, nil, sio, &syscall.SysProcAttr{Chroot: dir})
}
