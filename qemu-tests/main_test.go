// SPDX-License-Identifier: Apache-2.0

package qemutests

import (
	"os"
	"testing"

	"github.com/keel-boot/keel/qemu-tests/vm"
)

func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }
