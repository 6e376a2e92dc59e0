package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/runlog"
)

// runRecords reads a node's run records, oldest first, and checks that no
// credential is in any of them.
func runRecords(t *testing.T, bucket, node string) []*runlog.Record {
	t.Helper()
	c := testClient(t, bucket)
	nd := manifest.Node{Cluster: "prod", Name: node}
	for _, k := range listKeys(t, bucket, nd.Root()+manifest.RunsDir+"/") {
		b, err := c.GetBytes(context.Background(), k, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), miniotest.SecretKey) {
			t.Fatalf("run record %s holds the secret key: %s", k, b)
		}
	}
	recs, err := runlog.List(context.Background(), c, nd)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func statusJSON(t *testing.T, r result) statusReport {
	t.Helper()
	var rep statusReport
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("status --output json: %v\n%s", err, r.stdout)
	}
	return rep
}

func nodeByName(t *testing.T, rep statusReport, name string) nodeStatus {
	t.Helper()
	for _, n := range rep.Nodes {
		if n.Node == name {
			return n
		}
	}
	t.Fatalf("status has no node %s: %+v", name, rep.Nodes)
	return nodeStatus{}
}

// Three nodes back up; n2's next run fails (a tag it does not have). Its
// run record says so, status shows the failure with its error and the
// expected node n4 missing, and exits 7; once n2 succeeds again and n4 is
// no longer expected, status exits 0.
func TestStatusAndRunRecords(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	n := buildNode(t)
	for _, name := range []string{"n1", "n2", "n3"} {
		mustRun(t, append(n.backupArgs(bucket), "--node", name)...)
	}
	recs := runRecords(t, bucket, "n1")
	if len(recs) != 1 {
		t.Fatalf("n1 has %d run records, want 1", len(recs))
	}
	if r := recs[0]; r.Command != "backup" || r.Outcome != runlog.Success || r.ExitCode != 0 || r.BackupID == "" || r.Tag != n.tag ||
		r.Files == 0 || r.BytesUploaded == 0 || r.BytesStored == 0 || r.Tool != toolVersion() || r.Finished.Before(r.Started) ||
		r.Cluster != "prod" || r.Node != "n1" || r.Error != "" {
		t.Fatalf("n1's backup record: %+v", r)
	}

	// A run that fails before it touches the bucket leaves a record too.
	wantExit(t, s3bak(t, append(n.backupArgs(bucket), "--node", "n2", "--tag", "no-such-tag")...), exitNotFound, "no-such-tag")
	recs = runRecords(t, bucket, "n2")
	last := recs[len(recs)-1]
	if len(recs) != 2 || last.Outcome != runlog.Failed || last.ExitCode != exitNotFound || last.ErrorClass != "not_found" ||
		!strings.Contains(last.Error, "no-such-tag") || last.Tag != "no-such-tag" || last.Files != 0 {
		t.Fatalf("n2's records: %d, the last %+v", len(recs), last)
	}

	args := []string{"status", "--bucket", bucket, "--cluster", "prod", "--expect-nodes", "n1,n2,n3,n4", "--max-age", "26h"}
	r := s3bak(t, append(args, "--output", "json")...)
	wantExit(t, r, exitStatus, "n2 failed", "n4 missing")
	rep := statusJSON(t, r)
	if rep.OK || !slices.Equal(rep.Attention, []string{"n2", "n4"}) || rep.Cluster != "prod" || len(rep.Nodes) != 4 {
		t.Fatalf("status: %+v", rep)
	}
	if s := nodeByName(t, rep, "n4"); s.State != stateMissing || !s.Expected || s.LastBackup != nil {
		t.Fatalf("n4: %+v", s)
	}
	s2 := nodeByName(t, rep, "n2")
	if s2.State != stateFailed || s2.LastRun == nil || s2.LastRun.ExitCode != exitNotFound || !strings.Contains(s2.LastRun.Error, "no-such-tag") ||
		s2.LastBackup == nil || len(s2.Problems) != 1 || !strings.Contains(s2.Problems[0], "no-such-tag") {
		t.Fatalf("n2: %+v", s2)
	}
	s1 := nodeByName(t, rep, "n1")
	if s1.State != stateOK || s1.LastBackup == nil || s1.LastBackup.Tag != n.tag || s1.LastBackup.Files == 0 || s1.AgeSeconds <= 0 ||
		s1.AgeSeconds > 3600 || s1.AddedBytes == nil || *s1.AddedBytes == 0 || s1.LastRun == nil || s1.LastRun.Outcome != runlog.Success {
		t.Fatalf("n1: %+v", s1)
	}
	// The table says the same, and the failed node's error.
	r = s3bak(t, args...)
	wantExit(t, r, exitStatus)
	for _, want := range []string{"n4  ", "missing", "backup failed (exit 6)", "n2: last run failed: backup exited 6", "no-such-tag"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("status table does not say %q:\n%s", want, r.stdout)
		}
	}

	// n2 succeeds again; n4 is no longer expected: all is well.
	mustRun(t, append(n.backupArgs(bucket), "--node", "n2")...)
	rep = statusJSON(t, mustRun(t, "status", "--bucket", bucket, "--cluster", "prod", "--expect-nodes", "n1,n2,n3", "--max-age", "26h",
		"--tag", n.tag, "--output", "json"))
	if !rep.OK || len(rep.Attention) != 0 {
		t.Fatalf("status after n2's success: %+v", rep)
	}
	for _, s := range rep.Nodes {
		if s.State != stateOK || s.HasTag == nil || !*s.HasTag {
			t.Fatalf("node %s: %+v", s.Node, s)
		}
	}
	// The expected nodes from a file.
	nodes := filepath.Join(t.TempDir(), "nodes")
	writeFile(t, nodes, []byte("# the prod ring\nn1\nn2, n3\n\n"))
	mustRun(t, "status", "--bucket", bucket, "--cluster", "prod", "--expect-nodes-file", nodes, "--max-age", "26h")
	writeFile(t, nodes, []byte("n1 n2 n3 n5\n"))
	wantExit(t, s3bak(t, "status", "--bucket", bucket, "--cluster", "prod", "--expect-nodes-file", nodes), exitStatus, "n5 missing")
	// A tag no node has: every node needs attention.
	wantExit(t, s3bak(t, "status", "--bucket", bucket, "--cluster", "prod", "--tag", "other"), exitStatus, "no_tag")
	// A node whose backup is older than --max-age is stale.
	wantExit(t, s3bak(t, "status", "--bucket", bucket, "--cluster", "prod", "--max-age", "1ms"), exitStatus, "stale")

	// Only the last --keep-runs records of a node are kept; a failed
	// restore is recorded with its exit code and error.
	for range 3 {
		mustRun(t, "verify", "--bucket", bucket, "--cluster", "prod", "--node", "n3", "--skip-catalog", "--keep-runs", "3")
	}
	wantExit(t, s3bak(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "n3", "--backup", "20200101T000000Z",
		"--target", t.TempDir(), "--keep-runs", "3"), exitNotFound)
	recs = runRecords(t, bucket, "n3")
	var cmds []string
	for _, r := range recs {
		cmds = append(cmds, r.Command)
	}
	if !slices.Equal(cmds, []string{"verify", "verify", "restore"}) {
		t.Fatalf("n3's records after --keep-runs 3: %v", cmds)
	}
	if r := recs[2]; r.Outcome != runlog.Failed || r.ExitCode != exitNotFound || r.ErrorClass != "not_found" || !strings.Contains(r.Error, "20200101T000000Z") {
		t.Fatalf("the failed restore's record: %+v", r)
	}
	if r := recs[0]; r.Outcome != runlog.Success || r.BackupID == "" || r.BytesStored == 0 {
		t.Fatalf("a verify's record: %+v", r)
	}
}
