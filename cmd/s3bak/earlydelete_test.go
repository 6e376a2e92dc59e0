package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/purge"
)

// TestPurgeDryRunShowsEarlyDeletion: a purge that would delete data
// younger than its class's minimum storage duration says what that costs.
// MinIO stores no IA class, so REDUCED_REDUNDANCY is priced here as if it
// had a 30-day minimum (not in parallel: it changes the price table).
func TestPurgeDryRunShowsEarlyDeletion(t *testing.T) {
	purge.ClassCosts["REDUCED_REDUNDANCY"] = purge.ClassCost{MinDays: 30, MinSize: 128 << 10, USDPerGBMonth: 30}
	t.Cleanup(func() { delete(purge.ClassCosts, "REDUCED_REDUNDANCY") })
	n := buildNode(t)
	n.extra = []string{"--pack-size", "0", "--storage-class", "REDUCED_REDUNDANCY"}
	bucket := newBucket(t)
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	mustRun(t, n.backupArgs(bucket)...)
	// The second backup no longer has the large file: only the first
	// references it.
	snapshotAgain(t, n, n.tag+"x")
	big := filepath.Join(n.dataDirs[1], "shop/orders-0123456789abcdef0123456789abcdef", "snapshots", n.tag, "nb-7-big-Data.db")
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	mustRun(t, n.backupArgs(bucket)...)

	dry := mustRun(t, append([]string{"purge", "--keep-last", "1", "--grace", "0", "--dry-run"}, node...)...)
	if !strings.Contains(dry.stdout, "before their storage class's minimum duration would cost about $") {
		t.Fatalf("dry run does not show the early-deletion charge: %s", dry.stdout)
	}
	r := mustRun(t, append([]string{"purge", "--keep-last", "1", "--grace", "0", "--dry-run", "--output", "json"}, node...)...)
	var reps []purge.Report
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || len(reps) != 1 {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	e := reps[0].EarlyDeletion
	// The large file (13 MiB and a bit, stored uncompressed) for about 30
	// days at $30 per GiB-month.
	if e.Objects != 1 || e.Bytes < 13<<20 || e.USD < 0.38 || e.USD > 0.40 {
		t.Fatalf("early deletion %+v, want the large file's object at about $0.39", e)
	}
}
