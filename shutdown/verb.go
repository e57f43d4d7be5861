// SPDX-License-Identifier: Apache-2.0

package shutdown

import "fmt"

// Verb is what systemd-shutdown asks for.
type Verb string

// The verbs of the interface; "exit" (a container's) powers a machine off,
// as systemd-shutdown itself does.
const (
	Reboot   Verb = "reboot"
	PowerOff Verb = "poweroff"
	Halt     Verb = "halt"
	Kexec    Verb = "kexec"
	Exit     Verb = "exit"
)

// ParseVerb finds the verb in the shutdown program's arguments (argv
// without argv[0]): systemd-shutdown passes its own command line on, the
// verb first, then options such as --log-level info. Without a verb it
// returns Reboot and an error saying so: a machine shutting down must still
// go down, and a reboot brings it back.
func ParseVerb(args []string) (Verb, error) {
	for _, a := range args {
		switch v := Verb(a); v {
		case Reboot, PowerOff, Halt, Kexec:
			return v, nil
		case Exit:
			return PowerOff, nil
		}
	}
	return Reboot, fmt.Errorf("arguments %q: expected a verb (reboot, poweroff, halt, kexec or exit); rebooting", args)
}
