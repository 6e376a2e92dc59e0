package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// TestVerifyAllNodes: `verify --all-nodes` checks every node of the
// cluster; a corrupted object on one node fails that node only, with exit
// 5, and the JSON names it.
func TestVerifyAllNodes(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	for _, name := range []string{"n1", "n2", "n3"} {
		args := n.backupArgs(bucket)
		for i, a := range args {
			if a == "--node" {
				args[i+1] = name
			}
		}
		mustRun(t, args...)
	}
	all := []string{"verify", "--bucket", bucket, "--cluster", "prod", "--all-nodes", "--deep"}
	r := mustRun(t, all...)
	if !strings.Contains(r.stdout, "3 nodes checked, 0 nodes failed") {
		t.Fatalf("verify --all-nodes:\n%s", r.stdout)
	}

	// Damage one object of n2 (a large file's, not shared with n1/n3:
	// each node has its own prefix).
	ctx := context.Background()
	c := testClient(t, bucket)
	nd := manifest.Node{Cluster: "prod", Name: "n2"}
	m, err := catalog.Load(ctx, c, nd, "latest")
	if err != nil {
		t.Fatal(err)
	}
	var victim manifest.File
	for _, f := range m.Files {
		if f.Size > victim.Size {
			victim = f
		}
	}
	obj, err := c.GetBytes(ctx, nd.Root()+victim.Key, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	obj[len(obj)/3] ^= 0xff
	if err := c.PutBytes(ctx, nd.Root()+victim.Key, obj, ""); err != nil {
		t.Fatal(err)
	}
	r = s3bak(t, append(all, "--output", "json")...)
	if r.code != exitVerify {
		t.Fatalf("exit %d, want %d\n%s\n%s", r.code, exitVerify, r.stdout, r.stderr)
	}
	var out verifyAllOutput
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decode %q: %v", r.stdout, err)
	}
	// Nodes without a backup (this host's, which has only the records of
	// these verify runs) are listed and pass: nothing to verify.
	checked := 0
	for _, nv := range out.Nodes {
		if nv.BackupID != "" {
			checked++
		}
	}
	if out.OK || checked != 3 || len(out.Failed) != 1 || out.Failed[0] != "n2" {
		t.Fatalf("verify --all-nodes: %+v", out)
	}
	for _, nv := range out.Nodes {
		if nv.BackupID != "" && (nv.Node == "n2") == nv.OK {
			t.Fatalf("node %s ok=%v", nv.Node, nv.OK)
		}
	}
	wantExit(t, s3bak(t, append(all, "--from-node", "n1")...), exitUsage, "--all-nodes")
}
