// SPDX-License-Identifier: Apache-2.0

package devices

import "testing"

// TestCatchPanic: a goroutine deferring catchPanic hands its panic to the
// callback instead of crashing the process.
func TestCatchPanic(t *testing.T) {
	got := make(chan any, 1)
	go func() {
		defer catchPanic(func(r any) { got <- r })
		panic("uevent reader broke")
	}()
	if r := <-got; r != "uevent reader broke" {
		t.Errorf("OnPanic got %v", r)
	}
}
