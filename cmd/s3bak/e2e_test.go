package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/testfixture"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// node is a Cassandra node's data directories with one snapshot, and the
// tree a restore of it must produce.
type node struct {
	dataDirs []string
	tag      string
	want     map[string][]byte // restored path → bytes
	extra    []string          // more backup flags
}

// buildNode lays out real sstables of several versions over two data
// directories, with secondary-index sstables, a system keyspace (not backed
// up), empty files, a file of several parts and many small files.
func buildNode(t *testing.T) *node {
	t.Helper()
	td, err := testfixture.Testdata()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	n := &node{dataDirs: []string{filepath.Join(root, "d1"), filepath.Join(root, "d2")}, tag: "nightly", want: map[string][]byte{}}
	for i, version := range []string{"mc", "na"} {
		tables, err := testfixture.LegacyTables(td, version)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			snap, err := testfixture.WriteSnapshot(n.dataDirs[i], n.tag, tb, true)
			if err != nil {
				t.Fatal(err)
			}
			n.expect(t, snap, tb.Keyspace+"/"+tb.Dir())
		}
	}
	// An index sstable, a system keyspace and an older tag.
	tables, _ := testfixture.LegacyTables(td, "nb")
	snap, err := testfixture.WriteSnapshot(n.dataDirs[0], n.tag, tables[0], true)
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(snap, ".val_idx")
	writeFile(t, filepath.Join(idx, "nb-1-big-Data.db"), []byte("index sstable data"))
	writeFile(t, filepath.Join(idx, "nb-1-big-Index.db"), nil)
	n.expect(t, snap, tables[0].Keyspace+"/"+tables[0].Dir())
	sys := testfixture.Table{Keyspace: "system", Name: "local", ID: "7ad54392bcdd35a684174e047860b377", Source: tables[1].Source}
	if _, err := testfixture.WriteSnapshot(n.dataDirs[1], n.tag, sys, false); err != nil {
		t.Fatal(err)
	}
	if _, err := testfixture.WriteSnapshot(n.dataDirs[1], "older", tables[1], true); err != nil {
		t.Fatal(err)
	}
	// A large random file (several chunks and parts) and many small ones.
	bulk := filepath.Join(n.dataDirs[1], "shop", "orders-0123456789abcdef0123456789abcdef", "snapshots", n.tag)
	big := make([]byte, 13<<20+12345)
	rand.Read(big)
	writeFile(t, filepath.Join(bulk, "nb-7-big-Data.db"), big)
	for i := range 300 {
		writeFile(t, filepath.Join(bulk, "small", smallName(i)), []byte(strings.Repeat("k", i)))
	}
	n.expect(t, bulk, "shop/orders-0123456789abcdef0123456789abcdef")
	return n
}

// smallName is the name of buildNode's i-th small file (i bytes of 'k').
func smallName(i int) string {
	return "f" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
}

func (n *node) expect(t *testing.T, snapDir, restored string) {
	t.Helper()
	files, err := testfixture.TreeFiles(snapDir)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range files {
		n.want[restored+"/"+p] = b
	}
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *node) backupArgs(bucket string) []string {
	args := []string{"backup", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--tag", n.tag,
		"--chunk-size", "1MiB", "--part-size", "5MiB"}
	for _, d := range n.dataDirs {
		args = append(args, "--data-dir", d)
	}
	return append(args, n.extra...)
}

func compareTree(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	got, err := testfixture.TreeFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("missing after restore: %s", p)
		} else if !bytes.Equal(g, b) {
			t.Errorf("%s: restored %d bytes differ from the %d original bytes", p, len(g), len(b))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected file after restore: %s", p)
		}
	}
}

func TestBackupListVerifyRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	r := mustRun(t, n.backupArgs(bucket)...)
	if !strings.Contains(r.stdout, "backup ") {
		t.Fatalf("backup printed no summary: %s", r.stdout)
	}
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}

	list := mustRun(t, append([]string{"list", "--output", "json"}, node...)...)
	var sums []catalog.Summary
	if err := json.Unmarshal([]byte(list.stdout), &sums); err != nil || len(sums) != 1 {
		t.Fatalf("list: %v %s", err, list.stdout)
	}
	if sums[0].Files != len(n.want) || sums[0].Kind != "cassandra" || sums[0].Tag != "nightly" {
		t.Fatalf("list: %+v, want %d files", sums[0], len(n.want))
	}
	mustRun(t, append([]string{"verify", "--deep"}, node...)...)

	target := filepath.Join(t.TempDir(), "restore")
	r = mustRun(t, append([]string{"restore", "--target", target}, node...)...)
	compareTree(t, target, n.want)
	if !strings.Contains(r.stdout, "nodetool import legacy_tables") {
		t.Fatalf("restore does not print the nodetool step: %s", r.stdout)
	}
	// Mode and mtime come back too.
	for p := range n.want {
		if strings.HasSuffix(p, "-Data.db") {
			src := findSource(t, n, p)
			a, _ := os.Stat(src)
			b, _ := os.Stat(filepath.Join(target, p))
			if !a.ModTime().Equal(b.ModTime()) || a.Mode() != b.Mode() {
				t.Fatalf("%s: mtime/mode %v %v, want %v %v", p, b.ModTime(), b.Mode(), a.ModTime(), a.Mode())
			}
			break
		}
	}
	// A second restore refuses to overwrite, and --force replaces.
	wantExit(t, s3bak(t, append([]string{"restore", "--target", target}, node...)...), exitFailed, "file exists", "--force")
	mustRun(t, append([]string{"restore", "--force", "--target", target}, node...)...)
	compareTree(t, target, n.want)
}

func findSource(t *testing.T, n *node, restored string) string {
	t.Helper()
	parts := strings.SplitN(restored, "/", 3)
	for _, d := range n.dataDirs {
		p := filepath.Join(d, parts[0], parts[1], "snapshots", n.tag, parts[2])
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("no source for %s", restored)
	return ""
}

func TestRestoreFiltersKeyspaceAndTable(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	mustRun(t, n.backupArgs(bucket)...)
	target := t.TempDir()
	mustRun(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--target", target, "--keyspace", "shop")
	want := map[string][]byte{}
	for p, b := range n.want {
		if strings.HasPrefix(p, "shop/") {
			want[p] = b
		}
	}
	compareTree(t, target, want)
}

// TestMissingTagListsExistingTags: a tag the node has no snapshot of is
// the error reported, with the tags it has, whether or not the bucket is
// there: the snapshot is listed while the bucket is checked, and what the
// listing finds wrong comes first, as when it ran first.
func TestMissingTagListsExistingTags(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	for _, bucket := range []string{newBucket(t), "no-such-bucket-" + strings.ToLower(t.Name())} {
		args := n.backupArgs(bucket)
		for i, a := range args {
			if a == "--tag" {
				args[i+1] = "no-such-tag"
			}
		}
		wantExit(t, s3bak(t, args...), exitNotFound, `"no-such-tag" not found`, "nightly", "older")
	}
}

// backedUp is buildNode backed up into a bucket of its own, with a
// client of that bucket and the backup's manifest.
func backedUp(t *testing.T) (n *node, bucket string, c *transfer.Client, m *manifest.Manifest) {
	t.Helper()
	n = buildNode(t)
	bucket = newBucket(t)
	mustRun(t, n.backupArgs(bucket)...)
	c = testClient(t, bucket)
	m, err := catalog.Load(context.Background(), c, manifest.Node{Cluster: "prod", Name: "cass-1"}, "latest")
	if err != nil {
		t.Fatal(err)
	}
	return n, bucket, c, m
}

func TestCorruptObjectFailsRestoreAndLeavesNothing(t *testing.T) {
	t.Parallel()
	_, bucket, c, m := backedUp(t)
	ctx := context.Background()
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	// Flip one byte in the middle of the large file's object.
	var victim manifest.File
	for _, f := range m.Files {
		if f.Size > victim.Size {
			victim = f
		}
	}
	key := nd.Root() + victim.Key
	obj, err := c.GetBytes(ctx, key, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	obj[len(obj)/2] ^= 0xff
	if err := c.PutBytes(ctx, key, obj, ""); err != nil {
		t.Fatal(err)
	}
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	wantExit(t, s3bak(t, append([]string{"verify", "--deep"}, node...)...), exitVerify, victim.Path)
	target := t.TempDir()
	wantExit(t, s3bak(t, append([]string{"restore", "--target", target}, node...)...), exitVerify, victim.Path, "nothing was moved into place")
	left, err := testfixture.TreeFiles(target)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("a failed restore left %d files behind, e.g. %v", len(left), firstKey(left))
	}
}

func firstKey(m map[string][]byte) string {
	for k := range m {
		return k
	}
	return ""
}

func TestHostileManifestPathIsRejected(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	ctx := context.Background()
	c := testClient(t, bucket)
	nd := manifest.Node{Cluster: "prod", Name: "evil"}
	sha := strings.Repeat("ab", 32)
	for _, p := range []string{"../../outside", "/etc/cron.d/evil", "ks/../../x"} {
		m := manifest.Manifest{Schema: 1, ID: "20260101T000000Z", Kind: "cassandra", Cluster: "prod", Node: "evil",
			Files: []manifest.File{{Path: p, Size: 0, SHA256: sha, Key: manifest.ObjectKey(sha, false, 0), Compression: "none"}}}
		b, _ := json.Marshal(m)
		if err := c.PutBytes(ctx, nd.Root()+manifest.ManifestKey(m.ID), b, ""); err != nil {
			t.Fatal(err)
		}
		parent := t.TempDir()
		target := filepath.Join(parent, "a", "b")
		wantExit(t, s3bak(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "evil", "--target", target), exitVerify, p)
		left, _ := testfixture.TreeFiles(parent)
		if len(left) != 0 {
			t.Fatalf("hostile path %q wrote %v", p, firstKey(left))
		}
	}
}
