package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecordingsWriteTheirFiles: S3BAK_CPU_PROFILE and S3BAK_TRACE each
// leave a non-empty file once stopped; a file that cannot be made is one
// line naming the variable, and the run goes on.
func TestRecordingsWriteTheirFiles(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		env   string
		start func(string, *bytes.Buffer) func()
	}{
		{"S3BAK_CPU_PROFILE", func(p string, b *bytes.Buffer) func() { return startProfile(p, b) }},
		{"S3BAK_TRACE", func(p string, b *bytes.Buffer) func() { return startTrace(p, b) }},
	} {
		var stderr bytes.Buffer
		path := filepath.Join(dir, tc.env)
		stop := tc.start(path, &stderr)
		stop()
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 || stderr.Len() > 0 {
			t.Errorf("%s: file %v (%v), stderr %q", tc.env, fi, err, stderr.String())
		}
		stderr.Reset()
		tc.start(filepath.Join(dir, "missing", "x"), &stderr)()
		if !strings.HasPrefix(stderr.String(), "s3bak: "+tc.env+": ") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s into a missing directory: stderr %q", tc.env, stderr.String())
		}
		if tc.start("", &stderr)(); strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%s unset: wrote %q", tc.env, stderr.String())
		}
	}
}
