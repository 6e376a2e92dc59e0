package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// A backup killed after its manifest PUT and before it removed its pending
// marker is complete: list shows its id once, as complete, and purge
// (whatever its grace period) removes the stale marker.
func TestListShowsABackupWithAStaleMarkerOnceAsComplete(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	id := statsOf(t, mustRun(t, n.backupArgs(bucket)...)).ID
	c := testClient(t, bucket)
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	// What the killed run left: its manifest, and its marker.
	if err := catalog.WritePending(context.Background(), c, nd, catalog.Pending{ID: id, Kind: "cassandra", Tag: n.tag,
		Host: "cass-1", PID: 1, Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	l := mustRun(t, append([]string{"list", "--output", "json"}, node...)...)
	var sums []catalog.Summary
	if err := json.Unmarshal([]byte(l.stdout), &sums); err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 || sums[0].ID != id || sums[0].Status != catalog.Complete || sums[0].Files != len(n.want) {
		t.Fatalf("list shows %+v, want backup %s once, complete, with %d files", sums, id, len(n.want))
	}
	if l := mustRun(t, append([]string{"list"}, node...)...); strings.Count(l.stdout, id) != 1 || strings.Contains(l.stdout, "incomplete") {
		t.Fatalf("list:\n%s", l.stdout)
	}
	p := mustRun(t, append([]string{"purge", "--keep-last", "1"}, node...)...)
	if !strings.Contains(p.stdout, "1 pending marker cleaned") {
		t.Fatalf("purge did not clean the stale marker:\n%s", p.stdout)
	}
	if keys := listKeys(t, bucket, nd.Root()+manifest.PendingDir+"/"); len(keys) != 0 {
		t.Fatalf("pending markers left: %v", keys)
	}
}

// A snapshot of no files (a table with nothing flushed) is an empty
// backup, and its restore is zero files, exit 0.
func TestEmptyBackupRestoresAsZeroFiles(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, "shop", "empty-0123456789abcdef0123456789abcdef", "snapshots", "nightly"), 0o755); err != nil {
		t.Fatal(err)
	}
	bucket := newBucket(t)
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	mustRun(t, append([]string{"backup", "--tag", "nightly", "--data-dir", data}, node...)...)
	l := mustRun(t, append([]string{"list", "--output", "json"}, node...)...)
	var sums []catalog.Summary
	if err := json.Unmarshal([]byte(l.stdout), &sums); err != nil || len(sums) != 1 || sums[0].Files != 0 || sums[0].Status != catalog.Complete {
		t.Fatalf("list: %v %s", err, l.stdout)
	}
	mustRun(t, append([]string{"verify", "--deep"}, node...)...)
	target := filepath.Join(t.TempDir(), "restore")
	r := mustRun(t, append([]string{"restore", "--target", target}, node...)...)
	if !strings.Contains(r.stdout, "0 files") {
		t.Fatalf("restore says:\n%s", r.stdout)
	}
	if left := treeEntries(t, target); len(left) != 0 {
		t.Fatalf("target holds %v", left)
	}
}

// treeEntries lists everything under dir, directories with a trailing /
// (nil when dir does not exist).
func treeEntries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return filepath.SkipAll
		}
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A restore of a backup whose object is gone exits 5 (as verify does),
// whether the object is a large file's (HEAD, then ranged GETs), a small
// one's (one GET) or a pack; it leaves neither files nor the directories
// it made.
func TestRestoreOfAMissingObjectExits5(t *testing.T) {
	t.Parallel()
	_, bucket, c, m := backedUp(t)
	ctx := context.Background()
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	var big, packed manifest.File
	for _, f := range m.Files {
		if f.Size > big.Size {
			big = f
		}
		if manifest.IsPackKey(f.Key) && packed.Key == "" {
			packed = f
		}
	}
	if packed.Key == "" {
		t.Fatal("no packed file in the backup")
	}
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	for _, f := range []manifest.File{big, packed} {
		obj, err := c.GetBytes(ctx, nd.Root()+f.Key, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Delete(ctx, nd.Root()+f.Key); err != nil {
			t.Fatal(err)
		}
		parent := t.TempDir()
		target := filepath.Join(parent, "restore")
		wantExit(t, s3bak(t, append([]string{"restore", "--target", target}, node...)...), exitVerify, f.Key, "missing", "nothing was moved into place")
		if left := treeEntries(t, parent); len(left) != 0 {
			t.Fatalf("the failed restore left %v", left)
		}
		// Only the backup's own paths: the keyspace of the missing file.
		ks := strings.SplitN(f.Path, "/", 2)[0]
		wantExit(t, s3bak(t, append([]string{"restore", "--target", target, "--keyspace", ks}, node...)...), exitVerify, "missing")
		wantExit(t, s3bak(t, append([]string{"verify"}, node...)...), exitVerify, f.Path)
		if err := c.PutBytes(ctx, nd.Root()+f.Key, obj, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// A symbolic link under the target (target/shop -> a directory elsewhere)
// is refused, and nothing is written through it, unless --follow-symlinks.
func TestRestoreRefusesASymlinkUnlessFollowed(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	mustRun(t, n.backupArgs(bucket)...)
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	target, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(target, "shop")); err != nil {
		t.Fatal(err)
	}
	wantExit(t, s3bak(t, append([]string{"restore", "--target", target}, node...)...), exitFailed,
		filepath.Join(target, "shop"), "symbolic link", "--follow-symlinks")
	if left := treeEntries(t, elsewhere); len(left) != 0 {
		t.Fatalf("written through the link: %v", left)
	}
	if left := treeEntries(t, target); !slices.Equal(left, []string{"shop"}) {
		t.Fatalf("the refused restore left %v", left)
	}
	mustRun(t, append([]string{"restore", "--follow-symlinks", "--target", target}, node...)...)
	shop, rest := map[string][]byte{}, map[string][]byte{}
	for p, b := range n.want {
		if in, ok := strings.CutPrefix(p, "shop/"); ok {
			shop[in] = b
		} else {
			rest[p] = b
		}
	}
	compareTree(t, elsewhere, shop)
	if err := os.Remove(filepath.Join(target, "shop")); err != nil {
		t.Fatal(err)
	}
	compareTree(t, target, rest)
}

// A restore killed with SIGKILL leaves its temporary files; the next
// restore into the same target removes them (and says so) before it
// starts, and restores the backup whole.
func TestKilledRestoreLeavesNothingAfterTheRerun(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	mustRun(t, n.backupArgs(bucket)...)
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	target := t.TempDir()
	cmd := exec.Command(s3bakBin, append([]string{"restore", "--target", target, "--max-rate", "256KiB", "--log-format", "json"}, node...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	temps := func() []string {
		var tmp []string
		for _, p := range treeEntries(t, target) {
			// A temporary file, or a staged directory and what is in it.
			if strings.Contains(p, ".s3bak-tmp") {
				tmp = append(tmp, p)
			}
		}
		return tmp
	}
	waitFor(t, "temporary files of the restore", func() bool { return len(temps()) >= 3 })
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	left := temps()
	if len(left) < 3 {
		t.Fatalf("the killed restore left %d temporary files; output:\n%s", len(left), out.String())
	}
	r := mustRun(t, append([]string{"restore", "--target", target}, node...)...)
	compareTree(t, target, n.want)
	if tmp := temps(); len(tmp) != 0 {
		t.Fatalf("temporary files left after the rerun: %v", tmp)
	}
	if !strings.Contains(r.stderr, "temporary files of an interrupted restore") || !strings.Contains(r.stderr, strings.TrimSuffix(left[0], "/")) {
		t.Fatalf("the rerun does not say what it removed (%v):\n%s", left, r.stderr)
	}
}
