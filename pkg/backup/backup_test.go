package backup

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/transfer"
)

var client *transfer.Client

func TestMain(m *testing.M) {
	os.Exit(miniotest.Main(m, func(*miniotest.Server) (err error) {
		client, err = transfer.New(context.Background(), transfer.Options{Bucket: "backup"})
		return err
	}, "backup"))
}

// proxied starts a fault proxy in front of MinIO and a client through it.
func proxied(t *testing.T) (*faultproxy.Proxy, *transfer.Client) {
	t.Helper()
	p, err := faultproxy.New(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c, err := transfer.New(context.Background(), transfer.Options{Bucket: "backup", EndpointURL: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// via makes e talk to S3 through c.
func (e *Engine) via(c *transfer.Client) *Engine {
	e.client = c
	e.up = c.NewUploader(transfer.UploaderOptions{PartSize: transfer.MinPartSize, Concurrency: 2})
	return e
}

// addFile writes b as dir/name and adds it to set as ks/t-1/name.
func addFile(t *testing.T, set *source.Set, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	// As listed: a file's modification time is checked when it is read.
	set.Files = append(set.Files, source.File{Path: "ks/t-1/" + name, Dir: dir, Name: name, Size: int64(len(b)), Mode: 0o644, ModTime: fi.ModTime()})
}

// writeSet makes large files of several chunks and many small ones, half
// compressible and half random.
func writeSet(t *testing.T, large, largeSize, small int) *source.Set {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	set := &source.Set{Kind: "cassandra", Tag: "t"}
	add := func(name string, size int) {
		b := make([]byte, size)
		for i := range b {
			if (i/4096)%2 == 0 {
				b[i] = byte(rng.Uint32())
			} else {
				b[i] = byte(i % 7)
			}
		}
		addFile(t, set, dir, name, b)
	}
	for i := range large {
		add(fmt.Sprintf("nb-%d-big-Data.db", i), largeSize)
	}
	for i := range small {
		add(fmt.Sprintf("nb-%d-big-Statistics.db", i), 1000+i*37)
	}
	return set
}

func engine(t *testing.T, node string, b *budget.Budget, workers, concurrency int) (*Engine, *chunk.Encoder, *transfer.Uploader) {
	t.Helper()
	enc, err := chunk.NewEncoder(chunk.Options{Mode: chunk.Auto, ChunkSize: 1 << 20, Level: 1, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(enc.Close)
	up := client.NewUploader(transfer.UploaderOptions{PartSize: transfer.MinPartSize, Concurrency: 2})
	e := New(client, enc, up, Options{Node: manifest.Node{Cluster: "c", Name: node}, Concurrency: concurrency, Budget: b})
	return e, enc, up
}

// TestMemoryBudgetBoundsBuffersInFlight counts, through the budget every
// buffer is taken from, the bytes held at once by many files backed up
// concurrently: never more than the budget, and more than one large
// file's worth, so files did overlap.
func TestMemoryBudgetBoundsBuffersInFlight(t *testing.T) {
	set := writeSet(t, 6, 9<<20+123, 200)
	_, enc, up := engine(t, "probe", nil, 2, 8)
	stream := enc.StreamMemoryN(enc.Options().Workers) + up.StreamMemory()
	limit := 2*stream + 4<<20 // room for two large files and some small ones
	b := budget.New(limit)
	e, _, _ := engine(t, "bounded", b, 2, 8)
	res, err := e.Run(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(stored(t, e, res).Files); n != len(set.Files) || res.Manifest.Count() != int64(n) {
		t.Fatalf("%d files in the manifest (%d counted), want %d", n, res.Manifest.Count(), len(set.Files))
	}
	if b.Peak() > limit {
		t.Fatalf("peak %d bytes in flight, budget %d", b.Peak(), limit)
	}
	if b.Peak() <= stream {
		t.Fatalf("peak %d: large files never overlapped (one needs %d)", b.Peak(), stream)
	}
	if b.InUse() != 0 {
		t.Fatalf("%d bytes still held after the run", b.InUse())
	}
}

// TestBudgetSmallerThanOneFile still completes: a file larger than the
// whole budget takes all of it and runs alone.
func TestBudgetSmallerThanOneFile(t *testing.T) {
	set := writeSet(t, 2, 3<<20, 20)
	b := budget.New(1 << 20)
	e, _, _ := engine(t, "tiny", b, 2, 4)
	if _, err := e.Run(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	if b.Peak() > 1<<20 {
		t.Fatalf("peak %d over a 1 MiB budget", b.Peak())
	}
}

// TestPackingBesideLargeFilesNeverDeadlocks is issue #11's hang: with
// eight compressing workers a large file's stream asked for more than the
// budget left beside the packs, and waited forever for memory the packer
// held for the whole run. Every budget must complete, just slower; the
// deadline fails the test instead of hanging it.
func TestPackingBesideLargeFilesNeverDeadlocks(t *testing.T) {
	set := writeSet(t, 4, 3<<20+77, 2000)
	for _, size := range []int64{4 << 20, 10 << 20, 24 << 20, 40 << 20} {
		t.Run(fmt.Sprintf("budget %d MiB", size>>20), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			b := budget.New(size)
			e, _, _ := engine(t, fmt.Sprintf("deadlock-%d", size>>20), b, 8, 64)
			e.opts.PackSize = 0 // the default: packs beside the large files
			res, err := e.Run(ctx, set)
			if err != nil {
				t.Fatalf("backup under a %d MiB budget: %v", size>>20, err)
			}
			if res.Packs == 0 {
				t.Fatal("no packs: the test would not cover packing beside large files")
			}
			if b.Peak() > size {
				t.Fatalf("peak %d bytes over the %d-byte budget", b.Peak(), size)
			}
			if b.InUse() != 0 {
				t.Fatalf("%d bytes still held after the run", b.InUse())
			}
		})
	}
}

// TestHardLinksAreReadOnce: two names of one inode (a snapshot links its
// files to the live sstables, and two snapshots of one file link the same
// inode) are read once; a single-link file never enters the inode map.
func TestHardLinksAreReadOnce(t *testing.T) {
	set := writeSet(t, 0, 0, 3)
	first := set.Files[0]
	link := first
	link.Path = "ks/t-1/linked-Statistics.db"
	link.SetAbs(first.Abs() + ".link")
	if err := os.Link(first.Abs(), link.Abs()); err != nil {
		t.Fatal(err)
	}
	for i := range set.Files {
		fi, err := os.Stat(set.Files[i].Abs())
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		set.Files[i].Dev, set.Files[i].Ino = uint64(st.Dev), st.Ino
	}
	link.Dev, link.Ino = set.Files[0].Dev, set.Files[0].Ino
	set.Files = append(set.Files, link)
	if got := linkedInodes(set.Files); len(got) != 1 {
		t.Fatalf("%d linked inodes, want 1", len(got))
	}
	e, _, _ := engine(t, "hard-links", nil, 2, 4)
	res, err := e.Run(context.Background(), set)
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicates != 0 || res.Uploaded != 3 {
		t.Fatalf("uploaded %d, duplicates %d: the linked file was read twice", res.Uploaded, res.Duplicates)
	}
	m := stored(t, e, res)
	key := func(p string) string {
		for _, f := range m.Files {
			if f.Path == p {
				return f.Key
			}
		}
		t.Fatalf("%s is not in the manifest", p)
		return ""
	}
	if got := key(link.Path); got != key(first.Path) {
		t.Fatalf("the link is stored at %s, its inode's first file at %s", got, key(first.Path))
	}
}

// countBytes is a progress.Counter that sums what it is told.
type countBytes struct{ n atomic.Int64 }

func (c *countBytes) Add(n int64) { c.n.Add(n) }

// TestProgressCountsEveryFileOnce: the progress a backup reports adds up to
// the snapshot's size exactly — large files as S3 acknowledges their parts,
// packed files as their pack is stored, duplicates and unchanged files as
// they are decided — on a first backup and on a second that reads nothing.
func TestProgressCountsEveryFileOnce(t *testing.T) {
	set := writeSet(t, 2, 3<<20+5, 300)
	set.Files = append(set.Files, set.Files[5]) // the same content under a second name
	set.Files[len(set.Files)-1].Path = "ks/t-1/copy-Statistics.db"
	for range 2 {
		e, _, _ := engine(t, "progress", nil, 2, 8)
		var got countBytes
		e.opts.Progress = &got
		if _, err := e.RunLocked(context.Background(), set, SessionOptions{}); err != nil {
			t.Fatal(err)
		}
		if got.n.Load() != set.TotalSize() {
			t.Fatalf("progress counted %d bytes of a %d-byte snapshot", got.n.Load(), set.TotalSize())
		}
	}
}
