// Package eintr retries system calls that a signal interrupted. The Go
// runtime's preemption signal may interrupt any of them; package os
// retries its own, and code that makes system calls directly (on directory
// descriptors, to spare the kernel a path walk per file) needs the same.
package eintr

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Retry calls fn until it fails with something other than EINTR. Never
// for a close: a descriptor is gone whatever close returns.
func Retry(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
