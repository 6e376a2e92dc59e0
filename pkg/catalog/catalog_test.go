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

// TestListTakesSummariesFromTheSummaries: list reads the summaries object
// and only the headers of the manifests it lacks.
func TestListTakesSummariesFromTheSummaries(t *testing.T) {
	ctx := context.Background()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	ms := putManifests(t, node, 3)
	// A summary only the summaries object has proves list did not read
	// that manifest.
	sums := []Summary{summarize(ms[0]), summarize(ms[1])}
	sums[0].Tag = "from-summaries"
	if err := SaveSummaries(ctx, client, node, sums); err != nil {
		t.Fatal(err)
	}
	got, err := List(ctx, client, []manifest.Node{node})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Tag != "from-summaries" || got[2].Tag != "t" || got[2].Status != Complete || got[2].Files != 1 {
		t.Fatalf("list %+v", got)
	}
	// A manifest deleted behind the summaries' back is not listed.
	if err := client.Delete(ctx, node.Root()+manifest.ManifestKey(ms[1].ID)); err != nil {
		t.Fatal(err)
	}
	if got, _ := List(ctx, client, []manifest.Node{node}); len(got) != 2 {
		t.Fatalf("list after a manifest was deleted: %+v", got)
	}
}

// TestDamagedSummariesAreRebuilt: summaries that do not decode are made
// anew from the manifests' headers.
func TestDamagedSummariesAreRebuilt(t *testing.T) {
	ctx := context.Background()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	ms := putManifests(t, node, 2)
	if err := client.PutBytes(ctx, node.Root()+manifest.SummariesKey, []byte("not zstd"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSummaries(ctx, client, node); err == nil || !strings.Contains(err.Error(), manifest.SummariesKey) {
		t.Fatalf("LoadSummaries of garbage: %v", err)
	}
	got, err := UpdateSummaries(ctx, client, node)
	if err != nil || len(got) != 2 || got[1].ID != ms[1].ID {
		t.Fatalf("rebuilt summaries %+v, %v", got, err)
	}
	if again, err := LoadSummaries(ctx, client, node); err != nil || len(again) != 2 {
		t.Fatalf("saved summaries %+v, %v", again, err)
	}
}

// putStream stores m as a stream manifest.
func putStream(t *testing.T, node manifest.Node, m *manifest.Manifest) {
	t.Helper()
	b, err := m.EncodeStored()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.PutBytes(context.Background(), node.Root()+manifest.ManifestKey(m.ID), b, ""); err != nil {
		t.Fatal(err)
	}
}

// TestKnownOffersOnlyWhatIsStored: the last backup's records are found by
// the exact fingerprint (name, inode, size, time, digest) and by content
// (SHA-256 and size); a record whose object is gone is offered for
// neither; what this run records is found by content at once.
func TestKnownOffersOnlyWhatIsStored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	file := func(name string, i int) manifest.File {
		sha := fmt.Sprintf("%064x", i)
		return manifest.File{Path: "ks/t/" + name, Size: 3, ModTime: at, SHA256: sha, Key: manifest.ObjectKey(sha, false, 0),
			StoredSize: 3, Compression: chunk.None, Ino: uint64(100 + i), Digest: "d"}
	}
	kept, lost := file("a", 1), file("b", 2)
	m := &manifest.Manifest{Schema: 1, ID: manifest.NewID(at), Kind: "cassandra", Cluster: node.Cluster, Node: node.Name,
		Started: at, Finished: at, Files: []manifest.File{kept, lost}}
	putStream(t, node, m)
	if err := client.PutBytes(ctx, node.Root()+kept.Key, []byte("abc"), ""); err != nil {
		t.Fatal(err)
	}
	k, err := OpenKnown(ctx, client, node, KnownOptions{ID: manifest.NewID(at.Add(time.Hour)), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if len(k.Lost) != 1 || k.Lost[0].Key != lost.Key || k.Parent != m.ID {
		t.Fatalf("lost %+v parent %s", k.Lost, k.Parent)
	}
	fp := func(f manifest.File) string { return fingerprint(&f) }
	if f := (manifest.File{Size: 3}); !k.Lookup(fp(kept), &f) || f.SHA256 != kept.SHA256 || f.Key != kept.Key {
		t.Fatalf("unchanged file not found by fingerprint: %+v", f)
	}
	other := kept
	other.Ino++
	if f := (manifest.File{Size: 3}); k.Lookup(fp(other), &f) {
		t.Fatal("another inode matched")
	}
	if f := (manifest.File{Size: 4}); k.Lookup(fp(kept), &f) {
		t.Fatal("another size matched")
	}
	if f := (manifest.File{Size: 3}); k.Lookup(fp(lost), &f) || k.Content(&manifest.File{Size: 3, SHA256: lost.SHA256}) {
		t.Fatal("a record whose object is gone is offered")
	}
	if f := (manifest.File{Size: 3, SHA256: kept.SHA256}); !k.Content(&f) || f.Key != kept.Key {
		t.Fatalf("stored content not found: %+v", f)
	}
	if k.Content(&manifest.File{Size: 4, SHA256: kept.SHA256}) {
		t.Fatal("a content of another size matched")
	}
	fresh := file("c", 3)
	k.Record(fp(fresh), &fresh)
	if f := (manifest.File{Size: 3, SHA256: fresh.SHA256}); !k.Content(&f) || f.Key != fresh.Key {
		t.Fatalf("what this run stored is not found: %+v", f)
	}
	if !k.Dirty() {
		t.Fatal("a run that recorded a file has nothing to checkpoint")
	}
}

// TestCheckpointsResumeAKilledRun: a run's checkpoints are read by the
// next run, which offers what the killed run stored; a hostile checkpoint
// is skipped, not trusted; Done removes them all.
func TestCheckpointsResumeAKilledRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	sha := strings.Repeat("ab", 32)
	stored := manifest.File{Path: "ks/t/x", Size: 3, SHA256: sha, Key: manifest.ObjectKey(sha, false, 0), StoredSize: 3,
		Compression: chunk.None, Ino: 7}
	if err := client.PutBytes(ctx, node.Root()+stored.Key, []byte("abc"), ""); err != nil {
		t.Fatal(err)
	}
	killed, err := OpenKnown(ctx, client, node, KnownOptions{ID: "20261101T000000Z.000"})
	if err != nil {
		t.Fatal(err)
	}
	killed.Record(fingerprint(&stored), &stored)
	if err := killed.Save(ctx); err != nil {
		t.Fatal(err)
	}
	killed.Close()
	hostile := compress([]byte(`{"p":"../../etc/passwd","n":3,"h":"` + sha + `","k":"data/ab/x.raw","z":3,"c":"none"}` + "\n"))
	if err := client.PutBytes(ctx, node.Root()+manifest.CheckpointKey("20261101T000000Z.001", 0), hostile, ""); err != nil {
		t.Fatal(err)
	}
	next, err := OpenKnown(ctx, client, node, KnownOptions{ID: "20261101T010000Z.000"})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if f := (manifest.File{Size: 3}); !next.Lookup(fingerprint(&stored), &f) || f.Key != stored.Key {
		t.Fatalf("the killed run's file is not known: %+v", f)
	}
	if len(next.loaded) != 1 {
		t.Fatalf("checkpoints read: %v, want the good one only", next.loaded)
	}
	next.Done(ctx)
	keys, err := CheckpointKeys(ctx, client, node)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || !strings.Contains(keys[0], "20261101T000000Z.001") {
		t.Fatalf("checkpoints left: %v, want only the hostile one nobody read", keys)
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
