package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/s3bak/s3bak/pkg/miniotest"
)

// The tests drive the real command path (run) and the built binary against
// a real MinIO started for this package. Each test has its own bucket and
// temp dirs, so most run in parallel (t.Parallel); a test that sets the
// environment (t.Setenv), which the in-process command path reads, runs
// alone.
var (
	minio     *miniotest.Server
	s3bakBin  string
	bucketSeq atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "s3bak-cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // the binary also runs as an unprivileged user
	minio, err = miniotest.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer minio.Stop()
	minio.Setenv()
	s3bakBin = filepath.Join(dir, "s3bak")
	if out, err := exec.Command("go", "build", "-o", s3bakBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: build s3bak: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// newBucket gives each test its own bucket.
func newBucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", bucketSeq.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "_", "-")))
	name = strings.NewReplacer("/", "-").Replace(name)
	if len(name) > 60 {
		name = name[:60]
	}
	name = strings.TrimRight(name, "-")
	if err := minio.MakeBucket(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

type result struct {
	code           int
	stdout, stderr string
}

// s3bak runs a command line in-process.
func s3bak(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append(args, "--log-format", "json"), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func mustRun(t *testing.T, args ...string) result {
	t.Helper()
	r := s3bak(t, args...)
	if r.code != 0 {
		t.Fatalf("s3bak %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func wantExit(t *testing.T, r result, code int, msgs ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	logged := loggedText(r.stderr)
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) && !strings.Contains(r.stdout, m) && !strings.Contains(logged, m) {
			t.Fatalf("output does not mention %q\nstdout: %s\nstderr: %s", m, r.stdout, r.stderr)
		}
	}
}

// loggedText is the string values of the JSON records in a log, unquoted:
// with --log-format json a fatal error is a record, its message a field.
func loggedText(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		for _, v := range rec {
			if s, ok := v.(string); ok {
				b.WriteString(s)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}
