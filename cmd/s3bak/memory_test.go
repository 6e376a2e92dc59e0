package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/units"
)

// TestAnyMemoryBudgetCompletes is issue #11's hang: on 4+ CPUs, or under a
// small --max-memory, a backup with files over the chunk size blocked for
// ever in the memory budget. The built binary runs as eight CPUs would
// make it (GOMAXPROCS=8) at the smallest budgets, default chunk size, and
// must back up and restore byte-identical before a deadline that fails the
// test instead of hanging it. The peak RSS is logged for the closing note.
func TestAnyMemoryBudgetCompletes(t *testing.T) {
	t.Parallel()
	n := slowNode(t, 3000) // files over the chunk size beside thousands of small ones
	for _, mem := range []string{"16MiB", "32MiB", "64MiB"} {
		t.Run(mem, func(t *testing.T) {
			limit, err := units.Parse(mem)
			if err != nil {
				t.Fatal(err)
			}
			limit += fixedOverhead
			check := func(what string, rss int64) {
				t.Logf("--max-memory %s: %s peak RSS %d MiB", mem, what, rss>>20)
				if rss > limit {
					t.Errorf("%s peak RSS %d MiB over --max-memory %s plus the documented %d MiB", what, rss>>20, mem, fixedOverhead>>20)
				}
			}
			bucket := newBucket(t)
			args := []string{"backup", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--tag", n.tag, "--max-memory", mem}
			for _, d := range n.dataDirs {
				args = append(args, "--data-dir", d)
			}
			check("backup", runBounded(t, args...))
			target := filepath.Join(t.TempDir(), "restore")
			check("restore", runBounded(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--target", target, "--max-memory", mem))
			compareTree(t, target, n.want)
			check("verify --deep", runBounded(t, "verify", "--deep", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--max-memory", mem))
		})
	}
}

// fixedOverhead is what the process holds beside --max-memory (README,
// "Sparing the node"): the binary, the Go runtime, the SDK, and the zstd
// state of one encoder or decoder per CPU — with eight CPUs at the
// smallest budgets, and at most two chunks of a stream that cannot fit.
const fixedOverhead = 64 << 20

// runBounded runs the built binary with GOMAXPROCS=8 and fails the test if
// it does not exit 0 within two minutes; it returns the peak RSS.
func runBounded(t *testing.T, args ...string) int64 {
	t.Helper()
	return runBoundedFor(t, 2*time.Minute, args...)
}

// runBoundedFor is runBounded with a deadline of d.
func runBoundedFor(t *testing.T, d time.Duration, args ...string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, s3bakBin, append(args, "--log-format", "json")...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=8")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) } // a goroutine dump shows where it hung
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	peak := watchPeakRSS(cmd.Process.Pid)
	err := cmd.Wait()
	rss := peak()
	if ctx.Err() != nil {
		t.Fatalf("s3bak %v did not finish in %s (hung):\n%s", args, d, tail(out.Bytes()))
	}
	if err != nil {
		t.Fatalf("s3bak %v: %v\n%s", args, err, tail(out.Bytes()))
	}
	return rss
}

// watchPeakRSS samples the process's VmHWM (its own peak RSS) until it
// exits. rusage's ru_maxrss cannot be used: Linux counts the RSS of the
// forking process — this test binary, running many tests — into it.
func watchPeakRSS(pid int) (peak func() int64) {
	var hwm atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						var kib int64
						fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib)
						hwm.Store(max(hwm.Load(), kib<<10))
					}
				}
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() int64 { close(done); <-stopped; return hwm.Load() }
}

func tail(b []byte) string {
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}
