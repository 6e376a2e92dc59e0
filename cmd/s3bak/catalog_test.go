package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// testClient is an S3 client of bucket on the test's MinIO.
func testClient(t *testing.T, bucket string) *transfer.Client {
	t.Helper()
	c, err := transfer.New(context.Background(), transfer.Options{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// listKeys lists the keys under prefix in bucket.
func listKeys(t *testing.T, bucket, prefix string) []string {
	t.Helper()
	c := testClient(t, bucket)
	var keys []string
	for o, err := range c.List(context.Background(), prefix) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// backupStats is the "backup complete" log line of a run.
type backupStats struct {
	ID       string `json:"id"`
	Files    int    `json:"files"`
	Uploaded int    `json:"uploaded_objects"`
	Packs    int    `json:"packs"`
	Bytes    int64  `json:"uploaded_bytes"`
	Reused   int    `json:"reused"`
	Unread   int    `json:"unread"`
}

func statsOf(t *testing.T, r result) backupStats {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			backupStats
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "backup complete" {
			return line.backupStats
		}
	}
	t.Fatalf("no \"backup complete\" log line in:\n%s", r.stderr)
	return backupStats{}
}

// snapshotAgain does what `nodetool snapshot -t newTag` does to files that
// did not change: hard-links every file of the old snapshot into the new
// one. It returns the new tag's directories.
func snapshotAgain(t *testing.T, n *node, newTag string) []string {
	t.Helper()
	var dirs []string
	for _, d := range n.dataDirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !e.IsDir() || filepath.Base(p) != n.tag || filepath.Base(filepath.Dir(p)) != "snapshots" {
				return nil
			}
			dst := filepath.Join(filepath.Dir(p), newTag)
			dirs = append(dirs, dst)
			return filepath.WalkDir(p, func(q string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(p, q)
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
					return err
				}
				return os.Link(q, filepath.Join(dst, rel))
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	n.tag = newTag
	return dirs
}

func TestSecondBackupUploadsOnlyNewContent(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	first := statsOf(t, mustRun(t, n.backupArgs(bucket)...))
	if first.Uploaded == 0 || first.Unread != 0 {
		t.Fatalf("first backup: %+v", first)
	}
	wantOld := n.want
	dirs := snapshotAgain(t, n, "nightly-2")
	n.want = map[string][]byte{}
	for p, b := range wantOld {
		n.want[p] = b
	}
	// 5% new sstables (distinct contents), and one file of the same name
	// and size as before with other bytes: a compaction's output may reuse
	// a name, and must never be taken for the old content.
	added := len(wantOld) / 20
	table := "shop/orders-0123456789abcdef0123456789abcdef"
	bulk := filepath.Join(n.dataDirs[1], table, "snapshots", n.tag)
	for i := range added {
		b := []byte(strings.Repeat("new sstable ", 50+i))
		name := "nb-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "-big-Data.db"
		writeFile(t, filepath.Join(bulk, name), b)
		n.want[table+"/"+name] = b
	}
	same := filepath.Join(bulk, "small", smallName(200)) // 200 bytes of 'k' before
	old, err := os.ReadFile(same)
	if err != nil {
		t.Fatal(err)
	}
	changed := []byte(strings.Repeat("z", len(old)))
	if err := os.Remove(same); err != nil {
		t.Fatal(err)
	}
	writeFile(t, same, changed)
	n.want[table+"/small/"+smallName(200)] = changed
	_ = dirs

	before := len(listKeys(t, bucket, "prod/cass-1/data/"))
	second := statsOf(t, mustRun(t, n.backupArgs(bucket)...))
	after := len(listKeys(t, bucket, "prod/cass-1/data/"))
	// The new contents are all small: one pack holds them.
	if second.Uploaded != added+1 || second.Packs != 1 || after-before != 1 {
		t.Fatalf("second backup stored %d contents in %d packs (%d new objects in the bucket), want %d in 1: %+v", second.Uploaded, second.Packs, after-before, added+1, second)
	}
	if second.Unread != second.Files-added-1 {
		t.Fatalf("%d files read again, want only the %d new ones: %+v", second.Files-second.Unread, added+1, second)
	}
	if second.Bytes >= first.Bytes/10 {
		t.Fatalf("second backup sent %d bytes, the first %d", second.Bytes, first.Bytes)
	}

	// Both backups restore to their own bytes.
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	for id, want := range map[string]map[string][]byte{first.ID: wantOld, second.ID: n.want} {
		target := t.TempDir()
		mustRun(t, append([]string{"restore", "--backup", id, "--target", target}, node...)...)
		compareTree(t, target, want)
	}

	// --full reads and uploads everything again (--again: the tag is
	// backed up already).
	full := statsOf(t, mustRun(t, append(n.backupArgs(bucket), "--full", "--again")...))
	if full.Unread != 0 || full.Reused+full.Uploaded != full.Files || full.Uploaded < second.Uploaded+first.Uploaded/2 {
		t.Fatalf("--full: %+v", full)
	}
}

// TestPurgeKeepsWhatKeptBackupsUse stores an object per file (no packs),
// so that the sweep of single objects is seen one by one.
func TestPurgeKeepsWhatKeptBackupsUse(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	n.extra = []string{"--pack-size", "0"}
	bucket := newBucket(t)
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	var ids []string
	var wants []map[string][]byte
	table := "shop/orders-0123456789abcdef0123456789abcdef"
	for i := range 3 {
		if i > 0 {
			snapshotAgain(t, n, n.tag+"x")
			// Each backup drops one file and adds one: the first backup's
			// dropped file is referenced by it alone.
			bulk := filepath.Join(n.dataDirs[1], table, "snapshots", n.tag)
			gone := []string{"small/" + smallName(1), "nb-7-big-Data.db"}[i-1]
			if err := os.Remove(filepath.Join(bulk, gone)); err != nil {
				t.Fatal(err)
			}
			delete(n.want, table+"/"+gone)
			b := []byte(strings.Repeat("generation ", 10+i))
			writeFile(t, filepath.Join(bulk, "new"+string(rune('0'+i))), b)
			n.want[table+"/new"+string(rune('0'+i))] = b
		}
		ids = append(ids, statsOf(t, mustRun(t, n.backupArgs(bucket)...)).ID)
		w := map[string][]byte{}
		for p, b := range n.want {
			w[p] = b
		}
		wants = append(wants, w)
	}
	// A dry run deletes nothing.
	dry := mustRun(t, append([]string{"purge", "--keep-last", "2", "--grace", "0", "--dry-run"}, node...)...)
	if !strings.Contains(dry.stdout, "remove cass-1 "+ids[0]) || !strings.Contains(dry.stdout, "would delete 1 backup and") {
		t.Fatalf("dry run: %s", dry.stdout)
	}
	if got := listKeys(t, bucket, "prod/cass-1/backups/"); len(got) != 3 {
		t.Fatalf("dry run deleted manifests: %v", got)
	}
	dataBefore := listKeys(t, bucket, "prod/cass-1/data/")
	r := mustRun(t, append([]string{"purge", "--keep-last", "2", "--grace", "0", "--output", "json"}, node...)...)
	var reps []struct {
		Removed []struct{ ID string }
		Deleted int `json:"objects_deleted"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || len(reps) != 1 || len(reps[0].Removed) != 1 || reps[0].Removed[0].ID != ids[0] {
		t.Fatalf("purge report %s (%v)", r.stdout, err)
	}
	// Only the small file the first backup alone had is gone; the big file
	// (dropped by the third backup) is still the second's.
	dataAfter := listKeys(t, bucket, "prod/cass-1/data/")
	if reps[0].Deleted != 1 || len(dataBefore)-len(dataAfter) != 1 {
		t.Fatalf("purge deleted %d objects (%d → %d in the bucket), want 1", reps[0].Deleted, len(dataBefore), len(dataAfter))
	}
	for i, id := range ids[1:] {
		target := t.TempDir()
		mustRun(t, append([]string{"restore", "--backup", id, "--target", target}, node...)...)
		compareTree(t, target, wants[i+1])
	}
	wantExit(t, s3bak(t, append([]string{"restore", "--backup", ids[0], "--target", t.TempDir()}, node...)...), exitNotFound)
	v := mustRun(t, append([]string{"verify"}, node...)...)
	if !strings.Contains(v.stdout, "2 backups") || !strings.Contains(v.stdout, "0 orphans") {
		t.Fatalf("verify after purge: %s", v.stdout)
	}
	// What was deleted is not offered: a new backup of a tree that has
	// the deleted content again uploads it again instead of referencing
	// the deleted object.
	snapshotAgain(t, n, n.tag+"x")
	bulk := filepath.Join(n.dataDirs[1], table, "snapshots", n.tag)
	back := table + "/small/" + smallName(1)
	writeFile(t, filepath.Join(bulk, "small", smallName(1)), wants[0][back])
	n.want[back] = wants[0][back]
	mustRun(t, n.backupArgs(bucket)...)
	target := t.TempDir()
	mustRun(t, append([]string{"restore", "--target", target}, node...)...)
	compareTree(t, target, n.want)
}

func TestPurgeRefusesWithoutARule(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	wantExit(t, s3bak(t, "purge", "--bucket", bucket, "--cluster", "prod", "--node", "x"), exitUsage, "--keep-last")
}

func TestVerifyReportsOrphansAndMissingObjects(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	mustRun(t, n.backupArgs(bucket)...)
	ctx := context.Background()
	c := testClient(t, bucket)
	orphan := "prod/cass-1/data/ff/" + strings.Repeat("f", 64) + ".raw"
	if err := c.PutBytes(ctx, orphan, []byte("left by an interrupted run"), ""); err != nil {
		t.Fatal(err)
	}
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	r := mustRun(t, append([]string{"verify"}, node...)...)
	if !strings.Contains(r.stdout, "ORPHAN s3://"+bucket+"/"+orphan) || !strings.Contains(r.stdout, "1 orphan (") {
		t.Fatalf("verify did not report the orphan: %s", r.stdout)
	}
	// The grace period spares an unreferenced object a running backup may
	// have just written; without it, purge takes the orphan.
	p := mustRun(t, append([]string{"purge", "--keep-last", "5"}, node...)...)
	if !strings.Contains(p.stdout, "1 young unreferenced object spared") || len(listKeys(t, bucket, orphan)) != 1 {
		t.Fatalf("purge within the grace period: %s", p.stdout)
	}
	p = mustRun(t, append([]string{"purge", "--keep-last", "5", "--grace", "0"}, node...)...)
	if !strings.Contains(p.stdout, "deleted 0 backups and 1 object (") || len(listKeys(t, bucket, orphan)) != 0 {
		t.Fatalf("purge without grace: %s", p.stdout)
	}
	keys := listKeys(t, bucket, "prod/cass-1/data/")
	slices.Sort(keys)
	victim := keys[0]
	if err := c.Delete(ctx, victim); err != nil {
		t.Fatal(err)
	}
	wantExit(t, s3bak(t, append([]string{"verify", "--skip-catalog=false"}, node...)...), exitVerify, victim)
}

func TestUnfinishedUploadsAreListedAndAborted(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	mustRun(t, n.backupArgs(bucket)...)
	ctx := context.Background()
	c := testClient(t, bucket)
	key := "prod/cass-1/data/aa/" + strings.Repeat("a", 64) + ".c1024k.zst"
	if _, err := c.StartMultipart(ctx, key); err != nil {
		t.Fatal(err)
	}
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	v := mustRun(t, append([]string{"verify"}, node...)...)
	if !strings.Contains(v.stdout, "UNFINISHED multipart upload of s3://"+bucket+"/"+key) {
		t.Fatalf("verify does not list the unfinished upload: %s", v.stdout)
	}
	// Younger than --upload-age: left alone (a backup may be sending it).
	p := mustRun(t, append([]string{"purge", "--keep-last", "1"}, node...)...)
	if !strings.Contains(p.stdout, "0 unfinished uploads") {
		t.Fatalf("purge aborted a young upload: %s", p.stdout)
	}
	p = mustRun(t, append([]string{"purge", "--keep-last", "1", "--upload-age", "0"}, node...)...)
	if !strings.Contains(p.stdout, "1 unfinished upload and") {
		t.Fatalf("purge did not abort the stale upload: %s", p.stdout)
	}
	for u, err := range c.ListUploads(ctx, "prod/cass-1/") {
		t.Fatalf("upload left: %+v %v", u, err)
	}
}
