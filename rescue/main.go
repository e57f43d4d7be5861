// SPDX-License-Identifier: Apache-2.0

package rescue

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main runs the shell as a program with the command-line arguments args
// (args[0] is the name it was started as): "sh -c COMMAND" runs one
// command line, "sh" reads commands from standard input. It returns the
// exit status.
func Main(args []string) int {
	s := New()
	// Ctrl-C (or Ctrl-\) stops the command in the foreground, not the
	// shell: a program gets the signal from the terminal too, a built-in
	// is interrupted. Caught rather than ignored: an ignored signal would
	// stay ignored in the programs the shell starts. Ctrl-Z stops nothing
	// (no job control).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTSTP)
	go func() {
		for sig := range sigs {
			if sig != syscall.SIGTSTP {
				s.Interrupt()
			}
		}
	}()
	switch {
	case len(args) >= 3 && args[1] == "-c":
		return s.Run(args[2])
	case len(args) > 1:
		fmt.Fprintf(os.Stderr, "%s: usage: %s [-c COMMAND]\n", args[0], args[0])
		return 2
	}
	prompt := s.Get("PS1")
	if prompt == "" {
		prompt = "keel# "
	}
	fmt.Fprintln(os.Stdout, "keel rescue shell; help lists its commands.")
	return s.Interactive(prompt)
}
