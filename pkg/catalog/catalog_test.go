package catalog

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

var client *transfer.Client

func TestMain(m *testing.M) {
	os.Exit(miniotest.Main(m, func(*miniotest.Server) (err error) {
		client, err = transfer.New(context.Background(), transfer.Options{Bucket: "catalog"})
		return err
	}, "catalog"))
}

// putManifests stores n one-file manifests of node, an hour apart.
func putManifests(t *testing.T, node manifest.Node, n int) []*manifest.Manifest {
	t.Helper()
	var out []*manifest.Manifest
	for i := range n {
		at := time.Date(2026, 11, 1, i, 0, 0, 0, time.UTC)
		sha := fmt.Sprintf("%064x", i+1)
		m := &manifest.Manifest{Schema: 1, ID: manifest.NewID(at), Kind: "cassandra", Cluster: node.Cluster, Node: node.Name,
			Tag: "t", Started: at, Finished: at,
			Files: []manifest.File{{Path: "ks/t/f", Size: 3, SHA256: sha, Key: manifest.ObjectKey(sha, false, 0), StoredSize: 3, Compression: chunk.None}}}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := client.PutBytes(context.Background(), node.Root()+manifest.ManifestKey(m.ID), b, ""); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestListTakesSummariesFromTheIndex(t *testing.T) {
	ctx := context.Background()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	ms := putManifests(t, node, 3)
	x := NewIndex(node)
	x.AddBackup(ms[0])
	x.AddBackup(ms[1])
	// A summary only the index has proves list did not read that manifest.
	x.Backups[0].Tag = "from-index"
	if err := SaveIndex(ctx, client, node, x); err != nil {
		t.Fatal(err)
	}
	got, err := List(ctx, client, []manifest.Node{node})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Tag != "from-index" || got[2].Tag != "t" || got[2].Status != Complete {
		t.Fatalf("list %+v", got)
	}
	// A manifest deleted behind the index's back is not listed.
	if err := client.Delete(ctx, node.Root()+manifest.ManifestKey(ms[1].ID)); err != nil {
		t.Fatal(err)
	}
	if got, _ := List(ctx, client, []manifest.Node{node}); len(got) != 2 {
		t.Fatalf("list after a manifest was deleted: %+v", got)
	}
}

func TestDamagedIndexIsRebuiltFromManifests(t *testing.T) {
	ctx := context.Background()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	ms := putManifests(t, node, 2)
	if err := client.PutBytes(ctx, node.Root()+IndexKey, []byte("not zstd"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIndex(ctx, client, node); err == nil || !strings.Contains(err.Error(), IndexKey) {
		t.Fatalf("LoadIndex of garbage: %v", err)
	}
	var warned bool
	x, err := OpenIndex(ctx, client, node, func(string, ...any) { warned = true })
	if err != nil {
		t.Fatal(err)
	}
	if !warned || len(x.Summaries()) != 2 || x.Len() != 2 {
		t.Fatalf("rebuilt index: warned=%v %d backups %d objects", warned, len(x.Summaries()), x.Len())
	}
	f := manifest.File{Size: 3, SHA256: ms[1].Files[0].SHA256}
	if !x.Content(&f) || f.Key != ms[1].Files[0].Key {
		t.Fatalf("rebuilt index does not know %s", ms[1].Files[0].SHA256)
	}
}

func TestHostileIndexIsRefused(t *testing.T) {
	ctx := context.Background()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	sha := strings.Repeat("ab", 32)
	for name, o := range map[string]*Object{
		"key outside data/": {Key: "../../other-node/data/x", Size: 1, StoredSize: 1, Compression: chunk.None},
		"sizes disagree":    {Key: manifest.ObjectKey(sha, false, 0), Size: 1, StoredSize: 99, Compression: chunk.None},
		"unknown mode":      {Key: manifest.ObjectKey(sha, false, 0), Size: 1, StoredSize: 1, Compression: "lz4"},
	} {
		x := NewIndex(node)
		x.Objects[sha] = o
		x.dirty = true
		if err := SaveIndex(ctx, client, node, x); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIndex(ctx, client, node); err == nil {
			t.Errorf("%s: hostile index accepted", name)
		}
	}
}

func TestLookupNeedsFingerprintAndSize(t *testing.T) {
	node := manifest.Node{Cluster: "c", Name: "n"}
	x := NewIndex(node)
	sha := strings.Repeat("cd", 32)
	stored := manifest.File{Size: 10, SHA256: sha, Key: manifest.ObjectKey(sha, false, 0), StoredSize: 10, Compression: chunk.None}
	x.Record("a|1|10|5|", &stored)
	if f := (manifest.File{Size: 10}); !x.Lookup("a|1|10|5|", &f) || f.SHA256 != sha {
		t.Fatal("known fingerprint not found")
	}
	if f := (manifest.File{Size: 11}); x.Lookup("a|1|10|5|", &f) {
		t.Fatal("a different size matched")
	}
	if f := (manifest.File{Size: 10}); x.Lookup("a|2|10|5|", &f) {
		t.Fatal("another inode matched")
	}
	x.Forget(nil, []string{stored.Key})
	if f := (manifest.File{Size: 10}); x.Lookup("a|1|10|5|", &f) || x.Content(&manifest.File{Size: 10, SHA256: sha}) {
		t.Fatal("a forgotten object is still offered")
	}
}

// A run killed after its manifest PUT and before it removed its pending
// marker leaves both: the backup is complete (the manifest is the truth)
// and is listed once, as such.
func TestMarkerOfACompleteBackupIsNotListedAsIncomplete(t *testing.T) {
	ctx := context.Background()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	ms := putManifests(t, node, 2)
	for _, m := range ms {
		if err := WritePending(ctx, client, node, Pending{ID: m.ID, Kind: m.Kind, Tag: m.Tag, Host: "h", PID: 1, Started: m.Started}); err != nil {
			t.Fatal(err)
		}
	}
	// And one that really is unfinished.
	at := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	dead := Pending{ID: manifest.NewID(at), Kind: "cassandra", Tag: "t", Host: "h", PID: 1, Started: at}
	if err := WritePending(ctx, client, node, dead); err != nil {
		t.Fatal(err)
	}
	got, err := List(ctx, client, []manifest.Node{node})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ id, status string }{{ms[0].ID, Complete}, {ms[1].ID, Complete}, {dead.ID, Incomplete}}
	if len(got) != len(want) {
		t.Fatalf("list %+v, want %v", got, want)
	}
	for i, w := range want {
		if got[i].ID != w.id || got[i].Status != w.status {
			t.Fatalf("line %d: %s %s, want %s %s (list %+v)", i, got[i].ID, got[i].Status, w.id, w.status, got)
		}
	}
	if got[0].Files != 1 {
		t.Fatalf("the complete backup is listed from its marker, not its manifest: %+v", got[0])
	}
}

// TestListReadsSummariesNotTheIndex: the index grows with every file ever
// stored; list reads the small summaries object written beside it, and
// falls back to the index for a bucket that has none.
func TestListReadsSummariesNotTheIndex(t *testing.T) {
	ctx := context.Background()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	ms := putManifests(t, node, 2)
	x := NewIndex(node)
	x.AddBackup(ms[0])
	x.AddBackup(ms[1])
	x.Backups[0].Tag = "from-summaries"
	if err := SaveIndex(ctx, client, node, x); err != nil {
		t.Fatal(err)
	}
	// An index list cannot read: only the summaries can give the tag.
	if err := client.PutBytes(ctx, node.Root()+IndexKey, []byte("not zstd"), ""); err != nil {
		t.Fatal(err)
	}
	got, err := List(ctx, client, []manifest.Node{node})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Tag != "from-summaries" {
		t.Fatalf("list %+v", got)
	}
	// A bucket without summaries: the index's.
	if err := client.Delete(ctx, node.Root()+SummariesKey); err != nil {
		t.Fatal(err)
	}
	x.dirty = true
	x.savedSummaries = []byte("written before summaries were kept")
	x.mu.Lock()
	b, err := x.encodeLocked()
	x.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.PutBytes(ctx, node.Root()+IndexKey, b, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := List(ctx, client, []manifest.Node{node}); len(got) != 2 || got[0].Tag != "from-summaries" {
		t.Fatalf("list from the index: %+v", got)
	}
}
