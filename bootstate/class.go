// SPDX-License-Identifier: Apache-2.0

package bootstate

import "errors"

// Class says what a failed slot attempt proves about the slot.
type Class int

const (
	// Environment faults (a device that did not appear in time, a module,
	// a dm or ioctl error, the data partition, LUKS, a command-line
	// mistake) say nothing about the image: the slot's good flag and
	// priority are left alone. Unclassified errors are environment faults:
	// a good slot is never retired on a guess.
	Environment Class = iota
	// Image faults (header unreadable, unsigned or untrusted, below the
	// rollback floor, hash tree or root hash mismatch, image not mountable,
	// no init in the image) prove the image bad: the slot is marked bad,
	// unless it is the last good slot.
	Image
)

func (c Class) String() string {
	if c == Image {
		return "image fault"
	}
	return "environment fault"
}

// Fault is a slot attempt's error with its class and the step that failed.
type Fault struct {
	Class Class
	Step  string
	Err   error
}

func (f *Fault) Error() string { return f.Err.Error() }
func (f *Fault) Unwrap() error { return f.Err }

// Classify wraps err (nil stays nil) as a fault of class c in step.
func Classify(c Class, step string, err error) error {
	if err == nil {
		return nil
	}
	return &Fault{Class: c, Step: step, Err: err}
}

// ClassOf returns the class of the outermost Fault in err's chain;
// Environment when there is none.
func ClassOf(err error) Class {
	if f, ok := errors.AsType[*Fault](err); ok {
		return f.Class
	}
	return Environment
}
