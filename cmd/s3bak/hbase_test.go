package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

// unzip extracts the real ExportSnapshot output into a temp dir and returns
// its HBase root.
func unzipHBase(t *testing.T) string {
	t.Helper()
	zip, err := testfixture.HBaseZip()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := testfixture.Unzip(zip, dir); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "data")
}

// TestHBaseSnapshotRoundTrip backs up both snapshots of the real
// ExportSnapshot tree through MinIO and restores an ExportSnapshot-style
// tree: the snapshot directories and exactly the referenced HFiles.
func TestHBaseSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	root := unzipHBase(t)
	bucket := newBucket(t)
	mustRun(t, "backup", "--bucket", bucket, "--cluster", "hb", "--node", "rs-1", "--hbase-root", root, "--hbase-snapshot", "all")
	target := t.TempDir()
	r := mustRun(t, "restore", "--bucket", bucket, "--cluster", "hb", "--node", "rs-1", "--target", target)
	if !strings.Contains(r.stdout, "clone_snapshot") {
		t.Fatalf("restore does not print the HBase steps: %s", r.stdout)
	}
	got, err := testfixture.TreeFiles(target)
	if err != nil {
		t.Fatal(err)
	}
	src, err := testfixture.TreeFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	hfiles := 0
	for p, b := range got {
		if string(src[p]) != string(b) {
			t.Errorf("%s: restored bytes differ from the source tree", p)
		}
		if strings.HasPrefix(p, "archive/") {
			hfiles++
		}
	}
	for _, s := range []string{"test-snapshot", "test-snappy-snapshot"} {
		for _, f := range []string{".snapshotinfo", "data.manifest"} {
			if _, ok := got[".hbase-snapshot/"+s+"/"+f]; !ok {
				t.Errorf("missing %s/%s", s, f)
			}
		}
	}
	// 10 referenced HFiles per table; the 10 orphans per table stay behind.
	if hfiles != 20 {
		t.Fatalf("restored %d HFiles, want the 20 referenced ones", hfiles)
	}
	wantExit(t, s3bak(t, "backup", "--bucket", bucket, "--cluster", "hb", "--node", "rs-1", "--hbase-root", root, "--hbase-snapshot", "nope"), exitFailed, "nope", "test-snapshot")
}

// TestHBaseDifferentialAndPurge: HBase backups share the catalog with
// Cassandra's: a second backup of unchanged HFiles uploads nothing and
// reads nothing again, and purge keeps exactly what the kept backup uses.
func TestHBaseDifferentialAndPurge(t *testing.T) {
	t.Parallel()
	root := unzipHBase(t)
	bucket := newBucket(t)
	args := []string{"backup", "--bucket", bucket, "--cluster", "hb", "--node", "rs-1", "--hbase-root", root}
	first := statsOf(t, mustRun(t, append(args, "--hbase-snapshot", "all")...))
	second := statsOf(t, mustRun(t, append(args, "--hbase-snapshot", "all")...))
	if second.Uploaded != 0 || second.Unread != second.Files {
		t.Fatalf("second backup of an unchanged snapshot: %+v (first %+v)", second, first)
	}
	// Only one snapshot now: the other's HFiles are referenced by the
	// older backups alone.
	third := statsOf(t, mustRun(t, append(args, "--hbase-snapshot", "test-snapshot")...))
	node := []string{"--bucket", bucket, "--cluster", "hb", "--node", "rs-1"}
	r := mustRun(t, append([]string{"purge", "--keep-last", "1", "--grace", "0"}, node...)...)
	if !strings.Contains(r.stdout, "deleted 2 backups") {
		t.Fatalf("purge: %s", r.stdout)
	}
	ctx := context.Background()
	c := testClient(t, bucket)
	nd := manifest.Node{Cluster: "hb", Name: "rs-1"}
	m, err := catalog.Load(ctx, c, nd, "latest")
	if err != nil || m.ID != third.ID {
		t.Fatalf("latest backup %v, %v; want %s", m, err, third.ID)
	}
	want := map[string]bool{}
	for _, f := range m.Files {
		want[nd.Root()+f.Key] = true
	}
	data := listKeys(t, bucket, nd.Root()+"data/")
	for _, k := range data {
		if !want[k] {
			t.Errorf("purge left %s, which the kept backup does not use", k)
		}
	}
	if len(data) != len(want) {
		t.Fatalf("%d objects left, the kept backup uses %d", len(data), len(want))
	}
	target := t.TempDir()
	mustRun(t, append([]string{"restore", "--target", target}, node...)...)
	v := mustRun(t, append([]string{"verify", "--deep"}, node...)...)
	if !strings.Contains(v.stdout, "0 orphans") {
		t.Fatalf("verify after purge: %s", v.stdout)
	}
}
