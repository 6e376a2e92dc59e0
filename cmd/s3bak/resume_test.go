package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// slowNode is buildNode plus many small distinct files, so that a backup
// with --concurrency 1 runs for seconds: long enough to be killed or
// contended mid-way without any sleep in s3bak itself.
func slowNode(t *testing.T, extra int) *node {
	t.Helper()
	n := buildNode(t)
	dir := filepath.Join(n.dataDirs[0], "shop", "carts-00000000000000000000000000000001", "snapshots", n.tag)
	for i := range extra {
		b := []byte(fmt.Sprintf("small sstable component %d %s", i, strings.Repeat("z", i%97)))
		name := fmt.Sprintf("nb-%d-big-Statistics.db", i)
		writeFile(t, filepath.Join(dir, name), b)
		n.want["shop/carts-00000000000000000000000000000001/"+name] = b
	}
	return n
}

// startSlowBackup runs the real binary on a slowNode in the background and
// returns once the node's checkpoints record at least stored files.
func startSlowBackup(t *testing.T, stored int) (*node, string, *exec.Cmd, *strings.Builder) {
	t.Helper()
	n := slowNode(t, 1500)
	bucket := newBucket(t)
	// An object per file (no packs) keeps the run slow enough to be
	// caught in the middle.
	args := append(n.backupArgs(bucket), "--concurrency", "1", "--pack-size", "0", "--checkpoint-interval", "100ms", "--log-format", "json")
	cmd := exec.Command(s3bakBin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := testClient(t, bucket)
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	waitFor(t, fmt.Sprintf("checkpoints recording %d stored files", stored), func() bool { return checkpointed(c, nd) >= stored })
	return n, bucket, cmd, &out
}

// waitFor polls the bucket until ok says the run got far enough.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkpointed counts the files the node's checkpoints record.
func checkpointed(c *transfer.Client, nd manifest.Node) int {
	ctx := context.Background()
	keys, err := catalog.CheckpointKeys(ctx, c, nd)
	if err != nil {
		return 0
	}
	n := 0
	for _, k := range keys {
		if _, ok := manifest.CheckpointID(k); !ok {
			continue
		}
		b, err := c.GetBytes(ctx, k, 1<<30)
		if err != nil {
			continue
		}
		raw, err := chunk.Inflate(b, 1<<30)
		if err != nil {
			continue
		}
		n += bytes.Count(raw, []byte("\n"))
	}
	return n
}

func TestKilledBackupResumes(t *testing.T) {
	t.Parallel()
	n, bucket, cmd, out := startSlowBackup(t, 50)
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if keys := listKeys(t, bucket, nd.Root()+manifest.BackupsDir+"/"); len(keys) != 0 {
		t.Fatalf("the backup finished before it was killed (%v); output:\n%s", keys, out)
	}
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	l := mustRun(t, append([]string{"list"}, node...)...)
	if !strings.Contains(l.stdout, "incomplete") {
		t.Fatalf("list does not show the killed backup as incomplete:\n%s", l.stdout)
	}

	// The rerun (packing small files, as by default) takes over the dead
	// process's lock, uploads only what is missing, and completes.
	stats := statsOf(t, mustRun(t, n.backupArgs(bucket)...))
	if stats.Uploaded == 0 || stats.Reused < 50 || stats.Uploaded+stats.Reused != stats.Files {
		t.Fatalf("the rerun stored %d contents and reused %d of %d files; the killed run had stored at least 50", stats.Uploaded, stats.Reused, stats.Files)
	}
	target := t.TempDir()
	mustRun(t, append([]string{"restore", "--target", target}, node...)...)
	compareTree(t, target, n.want)
	l = mustRun(t, append([]string{"list"}, node...)...)
	if strings.Contains(l.stdout, "incomplete") || !strings.Contains(l.stdout, "complete") {
		t.Fatalf("after the rerun, list says:\n%s", l.stdout)
	}
	if keys := listKeys(t, bucket, nd.Root()+manifest.PendingDir+"/"); len(keys) != 0 {
		t.Fatalf("pending markers left: %v", keys)
	}
}

func TestSecondRunAndPurgeWaitForTheLock(t *testing.T) {
	t.Parallel()
	n, bucket, cmd, out := startSlowBackup(t, 10)
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	pid := fmt.Sprint(cmd.Process.Pid)

	second := s3bak(t, n.backupArgs(bucket)...)
	wantExit(t, second, exitLocked, "locked by backup", "pid "+pid, "--break-lock")
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	wantExit(t, s3bak(t, append([]string{"purge", "--keep-last", "1", "--grace", "0"}, node...)...), exitLocked, "pid "+pid)
	wantExit(t, s3bak(t, append([]string{"purge", "--all-nodes", "--keep-last", "1", "--grace", "0"}, node...)...), exitLocked, "skipped")
	if l := mustRun(t, append([]string{"list"}, node...)...); !strings.Contains(l.stdout, "running") {
		t.Fatalf("list during the backup:\n%s", l.stdout)
	}

	if err := cmd.Wait(); err != nil {
		t.Fatalf("the first run failed: %v\n%s", err, out)
	}
	// Nothing the purges saw was lost: the backup restores whole.
	target := t.TempDir()
	mustRun(t, append([]string{"restore", "--target", target}, node...)...)
	compareTree(t, target, n.want)
	if keys := listKeys(t, bucket, nd.Root()+"lock.json"); len(keys) != 0 {
		t.Fatalf("lock left after the run: %v", keys)
	}
}
