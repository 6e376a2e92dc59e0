package main

import (
	"context"
	"encoding/json"
	"strings"
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
	if keys := listKeys(t, bucket, nd.Root()+catalog.PendingDir+"/"); len(keys) != 0 {
		t.Fatalf("pending markers left: %v", keys)
	}
}
