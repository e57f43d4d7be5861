// SPDX-License-Identifier: Apache-2.0

package kargs

// hasControl reports C0 control bytes and DEL, which no option value needs
// and which could rewrite the console line that quotes it.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
