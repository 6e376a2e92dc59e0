package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// TestErrorClasses: a dashboard tells a nodetool failure and a stalled
// transfer from other failures by the class of the run's error.
func TestErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("take snapshot: %w", fmt.Errorf("%w: snapshot: exit status 2: error: Connection refused", cassandra.ErrNodetool)), "nodetool"},
		{fmt.Errorf("upload: %w", &transfer.StallError{Method: "PUT", URL: "http://s3/b/k", Phase: "sending the request"}), "stalled"},
		{errors.New("anything else"), "failed"},
	} {
		if got := errorClass(tc.err, exitFailed); got != tc.want {
			t.Errorf("%v: class %q, want %q", tc.err, got, tc.want)
		}
	}
}
