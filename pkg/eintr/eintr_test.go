package eintr

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRetry: a call interrupted is made again, until it succeeds or fails
// otherwise; that failure is returned as it is.
func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errs  []error
		want  error
		calls int
	}{
		{"ok", []error{nil}, nil, 1},
		{"interrupted, then ok", []error{unix.EINTR, unix.EINTR, nil}, nil, 3},
		{"interrupted, then failed", []error{unix.EINTR, unix.ENOENT}, unix.ENOENT, 2},
		{"failed", []error{unix.EACCES}, unix.EACCES, 1},
	} {
		calls := 0
		err := Retry(func() error {
			calls++
			return tc.errs[calls-1]
		})
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || calls != tc.calls {
			t.Errorf("%s: %v after %d calls, want %v after %d", tc.name, err, calls, tc.want, tc.calls)
		}
	}
}
