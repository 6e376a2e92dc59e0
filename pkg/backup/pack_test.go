package backup

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// TestSmallFilesArePacked backs up large and small files: the small ones
// share packs, each at its own place (its group's offset and its own from
// there), and are recorded in the index with their pack; the large ones
// get objects of their own.
func TestSmallFilesArePacked(t *testing.T) {
	set := writeSet(t, 2, 3<<20, 300)
	e, _, _ := engine(t, "packed", nil, 2, 8)
	e.opts.PackSize = 256 << 10 // several packs from 300 small files
	idx := newMemKnown()
	e.opts.Known = idx
	res, err := e.Run(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	type where struct {
		key       string
		off, skip int64
	}
	seen := map[where]bool{}
	packs := map[string]bool{}
	for _, f := range stored(t, e, res).Files {
		packed := manifest.IsPackKey(f.Key)
		if packed != strings.Contains(f.Path, "Statistics") {
			t.Fatalf("%s (%d bytes) stored at %s", f.Path, f.Size, f.Key)
		}
		if seen[where{f.Key, f.Offset, f.Skip}] {
			t.Fatalf("%s shares %s at %d+%d with another file", f.Path, f.Key, f.Offset, f.Skip)
		}
		seen[where{f.Key, f.Offset, f.Skip}] = true
		if packed {
			packs[f.Key] = true
		}
		var known manifest.File
		known.SHA256, known.Size = f.SHA256, f.Size
		if !idx.Content(&known) || known.Key != f.Key || known.Offset != f.Offset || known.Skip != f.Skip {
			t.Fatalf("index has %s as %s at %d, the manifest %s at %d", f.Path, known.Key, known.Offset, f.Key, f.Offset)
		}
	}
	if len(packs) < 2 || res.Packs != len(packs) {
		t.Fatalf("%d packs in the manifest, %d uploaded; want several", len(packs), res.Packs)
	}
	for k := range packs {
		if _, err := client.Head(context.Background(), e.opts.Node.Root()+k); err != nil {
			t.Fatalf("pack %s: %v", k, err)
		}
	}
}

// TestFailedPackIsNotRecorded makes every pack upload fail (the bucket
// does not exist): the backup fails naming the pack, and the index, which
// a later run trusts, records none of the contents that were in it.
func TestFailedPackIsNotRecorded(t *testing.T) {
	set := writeSet(t, 0, 0, 50)
	bad, err := transfer.New(context.Background(), transfer.Options{Bucket: "no-such-bucket"})
	if err != nil {
		t.Fatal(err)
	}
	e, enc, _ := engine(t, "lost", nil, 2, 4)
	up := bad.NewUploader(transfer.UploaderOptions{PartSize: transfer.MinPartSize, Concurrency: 2})
	e = New(bad, enc, up, e.opts)
	idx := newMemKnown()
	e.opts.Known = idx
	_, err = e.Run(context.Background(), set)
	if err == nil || !strings.Contains(err.Error(), "upload pack") {
		t.Fatalf("backup into a missing bucket: %v, want a failed pack upload", err)
	}
	if idx.Len() != 0 {
		t.Fatalf("the index records %d contents of packs that were never stored", idx.Len())
	}
}

// TestLastPackGoesBesideTheLargestFile: the last pack is uploaded once the
// small files are all in it, not when the run's last job ends. The large
// file's uploads are held at the proxy until the pack is in the bucket
// (watched directly, not through the proxy); a backup that kept the last
// pack until every job was done would never store it while they are
// held, and the watch gives up after a minute (a bound, not a measure).
func TestLastPackGoesBesideTheLargestFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, c := proxied(t)
	release := make(chan struct{})
	held := p.Add(faultproxy.Rule{Match: func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/data/") && !strings.Contains(r.URL.Path, "/packs/")
	}, Fault: faultproxy.Hold(release)})
	set := writeSet(t, 1, 12<<20, 200) // the large file sorts first
	e, _, _ := engine(t, "lastpack", nil, 2, 8)
	e.via(c)
	packs := e.opts.Node.Root() + manifest.DataDir + "/packs/"
	seen := make(chan bool, 1)
	go func() {
		defer close(release)
		for range 3000 {
			for _, err := range client.List(ctx, packs) {
				seen <- err == nil
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		seen <- false
	}()
	res, err := e.Run(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	if !<-seen {
		t.Fatal("no pack was stored while the large file's uploads were held")
	}
	if held.Applied() == 0 || res.Packs != 1 {
		t.Fatalf("%d uploads held, %d packs", held.Applied(), res.Packs)
	}
	if n := len(stored(t, e, res).Files); n != len(set.Files) {
		t.Fatalf("%d files stored, want %d", n, len(set.Files))
	}
}
