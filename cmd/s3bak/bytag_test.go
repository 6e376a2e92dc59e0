package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/catalog"
)

// snapshotAs links every file of n's "nightly" snapshots into snapshots
// named tag, as `nodetool snapshot -t tag` of unchanged tables would.
func snapshotAs(t *testing.T, n *node, tag string) {
	t.Helper()
	for _, d := range n.dataDirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.Contains(p, "/snapshots/"+n.tag+"/") {
				return err
			}
			dst := strings.Replace(p, "/snapshots/"+n.tag+"/", "/snapshots/"+tag+"/", 1)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			return os.Link(p, dst)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestPurgeByTagKeepsTheSameNightsOnEveryNode: per node, --keep-last 2
// keeps different nights on a node that missed one; --by-tag applies the
// rule to the cluster's tags, so every node keeps the same ones and a kept
// night stays whole across the cluster.
func TestPurgeByTagKeepsTheSameNightsOnEveryNode(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	for _, tag := range []string{"day1", "day2", "day3"} {
		snapshotAs(t, n, tag)
	}
	backup := func(node, tag string) {
		args := n.backupArgs(bucket)
		for i, a := range args {
			switch a {
			case "--node":
				args[i+1] = node
			case "--tag":
				args[i+1] = tag
			}
		}
		mustRun(t, args...)
	}
	for _, night := range []struct {
		tag   string
		nodes []string
	}{{"day1", []string{"n1", "n2", "n3"}}, {"day2", []string{"n1", "n2"}}, {"day3", []string{"n1", "n2", "n3"}}} {
		for _, node := range night.nodes {
			backup(node, night.tag)
		}
	}
	base := []string{"purge", "--bucket", bucket, "--cluster", "prod", "--all-nodes", "--keep-last", "2", "--grace", "0s"}
	wantExit(t, s3bak(t, "purge", "--bucket", bucket, "--cluster", "prod", "--node", "n1", "--keep-last", "2", "--by-tag"), exitUsage, "--all-nodes")

	// Per node, n3 would keep day1 (its second newest): a night the others drop.
	dry := mustRun(t, append(base, "--dry-run", "--output", "json")...)
	if kept := keptTags(t, dry.stdout, bucket)["n3"]; !slices.Equal(kept, []string{"day1", "day3"}) {
		t.Fatalf("per-node retention on n3 keeps %v", kept)
	}
	mustRun(t, append(base, "--by-tag")...)
	list := mustRun(t, "list", "--bucket", bucket, "--cluster", "prod", "--all-nodes", "--output", "json")
	var got []catalog.Summary
	if err := json.Unmarshal([]byte(list.stdout), &got); err != nil {
		t.Fatal(err)
	}
	tags := map[string][]string{}
	for _, s := range got {
		tags[s.Node] = append(tags[s.Node], s.Tag)
	}
	for node, want := range map[string][]string{"n1": {"day2", "day3"}, "n2": {"day2", "day3"}, "n3": {"day3"}} {
		have := tags[node]
		slices.Sort(have)
		if !slices.Equal(have, want) {
			t.Errorf("node %s keeps %v, want %v", node, have, want)
		}
	}
}

// keptTags maps each node of a purge --output json report to the tags of
// the backups it keeps.
func keptTags(t *testing.T, out, bucket string) map[string][]string {
	t.Helper()
	var reports []struct {
		Node string `json:"node"`
		Kept []struct {
			ID string `json:"id"`
		} `json:"kept"`
	}
	if err := json.Unmarshal([]byte(out), &reports); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	list := mustRun(t, "list", "--bucket", bucket, "--cluster", "prod", "--all-nodes", "--output", "json")
	var all []catalog.Summary
	if err := json.Unmarshal([]byte(list.stdout), &all); err != nil {
		t.Fatal(err)
	}
	tagOf := map[string]string{}
	for _, s := range all {
		tagOf[s.ID] = s.Tag
	}
	kept := map[string][]string{}
	for _, r := range reports {
		for _, k := range r.Kept {
			kept[r.Node] = append(kept[r.Node], tagOf[k.ID])
		}
		slices.Sort(kept[r.Node])
	}
	return kept
}

// TestRestoreAllNodesOfATag: one host restores a whole cluster's night,
// each node's backup of the tag into TARGET/<node>/, byte-identical; a
// node without that night is named and makes the command exit 6 after the
// others are restored.
func TestRestoreAllNodesOfATag(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	snapshotAs(t, n, "day1")
	snapshotAs(t, n, "day2")
	for _, b := range []struct{ node, tag string }{{"n1", "day1"}, {"n2", "day1"}, {"n3", "day2"}} {
		args := n.backupArgs(bucket)
		for i, a := range args {
			switch a {
			case "--node":
				args[i+1] = b.node
			case "--tag":
				args[i+1] = b.tag
			}
		}
		mustRun(t, args...)
	}
	target := t.TempDir()
	base := []string{"restore", "--bucket", bucket, "--cluster", "prod", "--all-nodes", "--target", target}
	wantExit(t, s3bak(t, base...), exitUsage, "--tag")
	r := s3bak(t, append(base, "--tag", "day1", "--output", "json")...)
	wantExit(t, r, exitNotFound, "n3")
	var outs []restoreOutput
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil {
		t.Fatalf("decode %q: %v", r.stdout, err)
	}
	if len(outs) != 2 {
		t.Fatalf("restored %+v", outs)
	}
	for _, node := range []string{"n1", "n2"} {
		compareTree(t, filepath.Join(target, node), n.want)
	}
	if _, err := os.Stat(filepath.Join(target, "n3")); err == nil {
		t.Fatal("n3, which has no day1, was restored")
	}
}
