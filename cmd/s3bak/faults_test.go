package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Fault tests of the built binary (issue #11): each runs under a deadline
// that fails it instead of hanging it.

// bigFileNode is a data directory with one snapshot holding a single large
// file of random bytes; it returns the directory and the file's SHA-256.
func bigFileNode(t *testing.T, size int64) (dataDir string, sum [32]byte) {
	t.Helper()
	dataDir = t.TempDir()
	snap := filepath.Join(dataDir, "shop", "orders-0123456789abcdef0123456789abcdef", "snapshots", "nightly")
	if err := os.MkdirAll(snap, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(snap, "nb-9-big-Data.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{1})
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rng, size)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	copy(sum[:], h.Sum(nil))
	return dataDir, sum
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// countingProxy counts the body bytes of every upload request (PUT and
// POST) that reaches MinIO through it.
func countingProxy(t *testing.T, target string) (*faultproxy.Proxy, *atomic.Int64) {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	var sent atomic.Int64
	p.Add(faultproxy.Rule{Match: func(r *http.Request) bool {
		if (r.Method == http.MethodPut || r.Method == http.MethodPost) && r.ContentLength > 0 {
			sent.Add(r.ContentLength)
		}
		return false
	}})
	return p, &sent
}

// TestKilledInTheMiddleOfALargeFileContinuesIt: kill -9 at 60% of a 1 GiB
// file under --max-rate; the rerun sends less than half of the file (bytes
// that reached MinIO, counted by a proxy in front of it) and the restore
// is byte-identical. Before, only finished files were credited.
func TestKilledInTheMiddleOfALargeFileContinuesIt(t *testing.T) {
	t.Parallel()
	const size = 1 << 30
	dataDir, sum := bigFileNode(t, size)
	bucket := newBucket(t)
	p, sent := countingProxy(t, minio.URL)
	args := []string{"backup", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--tag", "nightly",
		"--data-dir", dataDir, "--endpoint-url", p.URL, "--log-format", "json", "--checkpoint-interval", "200ms"}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	first := exec.CommandContext(ctx, s3bakBin, append(args, "--max-rate", "100MiB")...)
	var out bytes.Buffer
	first.Stdout, first.Stderr = &out, &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	c := testClient(t, bucket)
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	waitFor(t, "a checkpoint recording 60% of the file in parts", func() bool {
		ps, err := catalog.LoadPartials(ctx, c, nd)
		if err != nil {
			return false
		}
		for _, pt := range ps {
			if pt != nil && pt.Stored() >= size*6/10 {
				return true
			}
		}
		return false
	})
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	before := sent.Swap(0)

	second := exec.CommandContext(ctx, s3bakBin, append(args, "--break-lock")...)
	if b, err := second.CombinedOutput(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, tail(b))
	}
	after := sent.Load()
	t.Logf("sent to MinIO: %d MiB before the kill, %d MiB by the rerun, of a %d MiB file", before>>20, after>>20, size>>20)
	if after >= size/2 {
		t.Fatalf("the rerun sent %d MiB, not less than half of the %d MiB file", after>>20, size>>20)
	}
	target := filepath.Join(t.TempDir(), "restore")
	mustRun(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--target", target)
	if got := fileSum(t, filepath.Join(target, "shop", "orders-0123456789abcdef0123456789abcdef", "nb-9-big-Data.db")); got != sum {
		t.Fatal("the restored file differs from the original")
	}
}

// ownMinIO starts a MinIO of the test's own, to be stopped or restarted
// without disturbing other tests.
func ownMinIO(t *testing.T) *miniotest.Server {
	t.Helper()
	s, err := miniotest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	// A fresh server may answer "not initialized yet" for a moment after
	// it reports ready.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.MakeBucket(context.Background(), "own")
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startBackup starts a slow backup (many objects, one at a time) of n
// against endpoint and returns once it holds the node's lock.
func startBackup(t *testing.T, ctx context.Context, n *node, endpoint string, extra ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	args := append(n.backupArgs("own"), "--endpoint-url", endpoint, "--concurrency", "2", "--pack-size", "0", "--log-format", "json")
	cmd := exec.CommandContext(ctx, s3bakBin, append(args, extra...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backup to hold the node's lock", func() bool { return lockHeld(endpoint) })
	return cmd, out
}

// syncBuffer is a bytes.Buffer the test may read while the child writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// running tells whether pid is alive and not a zombie waiting to be reaped.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func lockHeld(endpoint string) bool {
	c, err := transfer.New(context.Background(), transfer.Options{Bucket: "own", EndpointURL: endpoint, MaxAttempts: 1})
	if err != nil {
		return false
	}
	_, err = c.Head(context.Background(), "prod/cass-1/lock.json")
	return err == nil
}

// TestStoppedServerIsRiddenOut: MinIO stopped (SIGSTOP: connections stay
// open, nothing answers) for 10 s in the middle of a backup. Requests that
// move no byte for --io-timeout are given up and retried, and the backup
// completes once the server answers again.
func TestStoppedServerIsRiddenOut(t *testing.T) {
	t.Parallel()
	s := ownMinIO(t)
	n := slowNode(t, 600)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, out := startBackup(t, ctx, n, s.URL, "--io-timeout", "2s", "--max-rate", "2MiB")
	time.Sleep(500 * time.Millisecond)
	if err := s.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	if err := s.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if !running(cmd.Process.Pid) {
		t.Fatalf("the backup ended before the server came back:\n%s", tail(out.Bytes()))
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("backup across a stopped server: %v\n%s", err, tail(out.Bytes()))
	}
	target := filepath.Join(t.TempDir(), "restore")
	r := s3bak(t, "restore", "--bucket", "own", "--endpoint-url", s.URL, "--cluster", "prod", "--node", "cass-1", "--target", target)
	if r.code != 0 {
		t.Fatalf("restore: %d\n%s", r.code, r.stderr)
	}
	compareTree(t, target, n.want)
}

// TestRestartedServerIsRiddenOut: MinIO killed in the middle of a backup
// and started again on the same port a minute later. The backup completes.
func TestRestartedServerIsRiddenOut(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute: the outage is real time")
	}
	t.Parallel()
	s := ownMinIO(t)
	n := slowNode(t, 600)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd, out := startBackup(t, ctx, n, s.URL, "--max-rate", "2MiB")
	time.Sleep(500 * time.Millisecond)
	if err := s.Restart(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !running(cmd.Process.Pid) {
		t.Fatalf("the backup ended before the server came back:\n%s", tail(out.Bytes()))
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("backup across a restarted server: %v\n%s", err, tail(out.Bytes()))
	}
	target := filepath.Join(t.TempDir(), "restore")
	r := s3bak(t, "restore", "--bucket", "own", "--endpoint-url", s.URL, "--cluster", "prod", "--node", "cass-1", "--target", target)
	if r.code != 0 {
		t.Fatalf("restore: %d\n%s", r.code, r.stderr)
	}
	compareTree(t, target, n.want)
}

// TestStalledRestoreIsRetriedOrFailsClearly: a GET whose body stops
// half-way on an open connection hung restore for 600 s and more. Once,
// it is given up after --io-timeout and read again; always (every GET
// black-holed), the restore fails with exit 1 naming the stall, in
// seconds, and leaves nothing in place.
func TestStalledRestoreIsRetriedOrFailsClearly(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	mustRun(t, n.backupArgs(bucket)...)
	p, err := faultproxy.New(minio.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	restoreArgs := func(target string) []string {
		return []string{"restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--target", target,
			"--endpoint-url", p.URL, "--io-timeout", "1s", "--max-attempts", "2"}
	}

	stall := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodGet, "/data/"), Times: 1, Fault: faultproxy.StallBody})
	target := filepath.Join(t.TempDir(), "once")
	mustRun(t, restoreArgs(target)...)
	if stall.Applied() != 1 {
		t.Fatalf("the stall was applied %d times", stall.Applied())
	}
	compareTree(t, target, n.want)

	p.ClearRules()
	p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodGet, "/data/"), Fault: faultproxy.Blackhole})
	target = filepath.Join(t.TempDir(), "always")
	start := time.Now()
	r := s3bak(t, restoreArgs(target)...)
	wantExit(t, r, 1, "no byte moved")
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("a black-holed restore took %s to give up", took)
	}
	if _, err := os.Stat(target); err == nil {
		if got, _ := filepath.Glob(filepath.Join(target, "*", "*", "*")); len(got) > 0 {
			t.Fatalf("a failed restore left files in place: %v", got)
		}
	}
}

// TestBackupPausedPastItsLeaseCannotCommit: a backup stopped (SIGSTOP)
// longer than its lease finds, when it goes on, that a purge took the lock
// over meanwhile and swept the objects it had uploaded. It must write
// neither its manifest nor the index and exit 3 — a lease is not a
// guarantee, the fence before each commit is.
func TestBackupPausedPastItsLeaseCannotCommit(t *testing.T) {
	t.Parallel()
	n := slowNode(t, 800)
	bucket := newBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append(n.backupArgs(bucket), "--pack-size", "0", "--concurrency", "2", "--max-rate", "1MiB",
		"--lock-lease", "3s", "--checkpoint-interval", "200ms", "--log-format", "json")
	backup := exec.CommandContext(ctx, s3bakBin, args...)
	out := &syncBuffer{}
	backup.Stdout, backup.Stderr = out, out
	if err := backup.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backup to hold the lock and store some objects", func() bool {
		return len(listKeys(t, bucket, "prod/cass-1/data/")) > 5
	})
	if err := backup.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // past the 3 s lease: nobody renews it
	// Another run takes the expired lock over and sweeps what no manifest
	// references: everything the paused backup uploaded.
	r := s3bak(t, "purge", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--keep-last", "1", "--grace", "0s")
	if r.code != 0 {
		t.Fatalf("purge: exit %d\n%s", r.code, r.stderr)
	}
	if err := backup.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	err := backup.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("the paused backup: %v, want exit 3\n%s", err, tail(out.Bytes()))
	}
	if keys := listKeys(t, bucket, "prod/cass-1/backups/"); len(keys) != 0 {
		t.Fatalf("a backup that lost its lock wrote manifests %v", keys)
	}
}
