// SPDX-License-Identifier: Apache-2.0

package shutdown

import (
	"strings"
	"testing"
)

func TestParseVerb(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want Verb
		err  bool
	}{
		{[]string{"poweroff"}, PowerOff, false},
		{[]string{"reboot", "--timeout", "90000000us", "--log-level", "info", "--log-target", "kmsg"}, Reboot, false},
		{[]string{"--log-level", "debug", "halt"}, Halt, false},
		{[]string{"kexec"}, Kexec, false},
		{[]string{"exit", "--exit-code", "3"}, PowerOff, false},
		{nil, Reboot, true},
		{[]string{"suspend"}, Reboot, true},
	} {
		got, err := ParseVerb(tc.args)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%q: %s, %v; want %s, error %v", tc.args, got, err, tc.want, tc.err)
		}
	}
}

// FuzzParseVerb: any command line gives one of the verbs the program
// performs, and an error exactly when no verb was given.
func FuzzParseVerb(f *testing.F) {
	f.Add("poweroff --log-level info")
	f.Add("")
	f.Fuzz(func(t *testing.T, line string) {
		v, err := ParseVerb(strings.Fields(line))
		switch v {
		case Reboot, PowerOff, Halt, Kexec:
		default:
			t.Fatalf("verb %q", v)
		}
		if err != nil && v != Reboot {
			t.Fatalf("error %v with verb %s", err, v)
		}
	})
}
