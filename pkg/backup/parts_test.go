package backup

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// TestPartsHoldWholeChunksWithinTheirMemory: a chunk that does not
// compress is a part of its own (not a part and a half, which took twice
// the memory a part in flight), compressed chunks share a part until it
// reaches the part size, a part short of S3's minimum grows past its
// buffer to take a large chunk, and the writer's buffers never pass its
// limit while more parts than fit in it are written.
func TestPartsHoldWholeChunksWithinTheirMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const mib = 1 << 20
	const chunkSize, partSize = 8 * mib, 8 * mib
	// The stored form of each chunk: 7 MiB for one that barely
	// compresses, less for those that do.
	stored := []int{7 * mib, 7 * mib, 2 * mib, 2 * mib, 2 * mib, 2 * mib, 7 * mib, 7 * mib, 3 * mib, 7 * mib, 7 * mib}
	const table = int64(len("seek table"))
	// The seek table ends the last part.
	want := []int64{7 * mib, 7 * mib, 8 * mib, 7 * mib, 7 * mib, 10 * mib, 7*mib + table}
	u, p := startUpload(ctx, t, len(stored), chunkSize)
	limit := 3 * PartBuffer(partSize, chunkSize)
	w := newPartWriter(ctx, client, u, p, nil, partSize, 4, limit)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range stored {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if got := endParts(ctx, t, w, u, "seek table"); !slices.Equal(got, want) {
		t.Fatalf("parts of %v bytes, want %v", got, want)
	}
	// One part grew past its buffer (3 MiB, then 7): the limit holds
	// anyway, by waiting for stored parts.
	if w.peak > limit {
		t.Fatalf("the part buffers held %d bytes at most, over their limit of %d", w.peak, limit)
	}
	if err := client.CompleteMultipart(ctx, u, w.parts()); err != nil {
		t.Fatal(err)
	}
}

// TestPartsSendKeptBuffersWithoutACopy: chunks that barely compressed are
// sent from the encoder's buffers, as many whole buffers a part as its
// memory has room for; a chunk that compressed well is copied, a part of
// kept buffers goes before it, and the seek table joins the last part.
// Each kept buffer is handed back once, after its part is stored: the
// test scribbles over each as it comes back, and the object is still what
// was written. The writer's memory stays within its limit.
func TestPartsSendKeptBuffersWithoutACopy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const mib = 1 << 20
	const chunkSize, partSize = 8 * mib, 16 * mib
	stored := []int{7 * mib, 7 * mib, 7 * mib, 1 * mib, 7 * mib, 7 * mib}
	wantKept := []bool{true, true, true, false, false, true}
	const table = "seek table"
	want := []int64{14 * mib, 7 * mib, 8 * mib, 7*mib + int64(len(table))}
	u, p := startUpload(ctx, t, len(stored), chunkSize)
	limit := 2 * PartBuffer(partSize, chunkSize)
	w := newPartWriter(ctx, client, u, p, nil, partSize, 4, limit)
	rng := rand.New(rand.NewPCG(7, 8))
	var (
		mu       sync.Mutex
		returned int
		object   []byte
	)
	for i, n := range stored {
		b := make([]byte, n, chunk.BufferSize(chunkSize))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		object = append(object, b...)
		// As EncodeFrom does: the part's checksum is combined from its
		// chunks' (S3 refuses a part whose checksum is wrong).
		w.note(chunk.Chunk{StoredLen: int64(n), StoredCRC32C: chunk.CRC32C(b)})
		kept, err := w.KeepWrite(b, func() {
			mu.Lock()
			defer mu.Unlock()
			returned++
			for j := range b {
				b[j] = 0xee
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if kept != wantKept[i] {
			t.Errorf("chunk %d of %d MiB: kept %v, want %v", i, n/mib, kept, wantKept[i])
		}
	}
	object = append(object, table...)
	if got := endParts(ctx, t, w, u, table); !slices.Equal(got, want) {
		t.Fatalf("parts of %v bytes, want %v", got, want)
	}
	if kept := strings.Count(fmt.Sprint(wantKept), "true"); returned != kept {
		t.Fatalf("%d kept buffers handed back, want %d", returned, kept)
	}
	if w.peak > limit {
		t.Fatalf("the writer held %d bytes at most, over its limit of %d", w.peak, limit)
	}
	if err := client.CompleteMultipart(ctx, u, w.parts()); err != nil {
		t.Fatal(err)
	}
	back, err := client.GetBytes(ctx, u.Key, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, object) {
		t.Fatal("the object is not the bytes written: a kept buffer was handed back before its part was stored")
	}
}

// startUpload starts the multipart upload of a file of chunks chunks, at
// a key of the test's own (aborted at the end unless completed), and its
// partial upload record.
func startUpload(ctx context.Context, t *testing.T, chunks int, chunkSize int64) (transfer.Upload, *catalog.Partial) {
	t.Helper()
	key := "parts/" + t.Name()
	u, err := client.StartMultipart(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Abort(context.WithoutCancel(ctx), u) })
	return u, &catalog.Partial{Key: key, UploadID: u.ID, Size: int64(chunks) * chunkSize, ChunkSize: chunkSize}
}

// endParts writes the seek table, the stream's last write, sends the last
// part, waits for every part and returns the sizes the server has, in
// order.
func endParts(ctx context.Context, t *testing.T, w *partWriter, u transfer.Upload, table string) []int64 {
	t.Helper()
	if _, err := w.Write([]byte(table)); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(); err != nil {
		t.Fatal(err)
	}
	have, err := client.ListParts(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for n := int32(1); n <= int32(len(have)); n++ {
		got = append(got, have[n].Size)
	}
	return got
}

// TestStreamMemoryFollowsTheFile: a large file of a few chunks takes the
// memory of a few chunks, not that of a stream of many, so that several
// such files stream at once; a file of many chunks takes a whole stream's.
func TestStreamMemoryFollowsTheFile(t *testing.T) {
	e, enc, up := engine(t, "shape", nil, 2, 8)
	cs := int64(enc.Options().ChunkSize)
	part := PartBuffer(up.PartSize(), cs)
	for _, tc := range []struct {
		name       string
		size       int64
		enc, parts int64
	}{
		{"two chunks", cs + 1, 2 * 2 * cs, 3 * part},
		{"three chunks", 3 * cs, 2 * 3 * cs, 3 * part},
		{"many chunks", 100 * cs, enc.StreamMemoryN(2), int64(up.Concurrency()+1) * part},
	} {
		_, gotEnc, gotParts := e.streamShape(tc.size)
		if gotEnc != tc.enc || gotParts != tc.parts {
			t.Errorf("%s: encoder %d and parts %d bytes, want %d and %d", tc.name, gotEnc, gotParts, tc.enc, tc.parts)
		}
	}
}

// TestNextStreamStartsWhileTheLastOnesPartsAreStored: a large file's
// stream starts with a part buffer or two and takes the rest of its parts'
// memory as it comes free, and a stream whose last chunk is encoded gives
// its memory back part by part as they are stored. In a budget that holds
// one whole stream and not two, the next file's stream therefore sends its
// first part while the last one's parts are still being stored (it waited
// for all of them before), and the budget holds.
func TestNextStreamStartsWhileTheLastOnesPartsAreStored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	set := &source.Set{Kind: "cassandra", Tag: "t"}
	rng := rand.New(rand.NewPCG(5, 6))
	for i, size := range []int{12<<20 + 1, 12<<20 + 2} {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		addFile(t, set, dir, fmt.Sprintf("nb-%d-big-Data.db", i), b)
	}
	probe, _, _ := engine(t, "probe", nil, 2, 2)
	_, enc, parts := probe.via(client).streamShape(12 << 20)
	first := min(parts, startParts*PartBuffer(probe.up.PartSize(), int64(probe.enc.Options().ChunkSize)))
	// A whole stream, or one's parts and the next one's start; not two.
	limit := max(enc+parts, parts+enc+first)
	if limit >= 2*(enc+parts) {
		t.Fatalf("a budget of %d holds two streams of %d", limit, enc+parts)
	}
	b := budget.New(limit)
	e, _, _ := engine(t, "handoff", b, 2, 2)
	p, c := proxied(t)
	e.via(c)
	// Every part takes a second: a stream's last parts are stored long
	// after its last chunk is encoded.
	var mu sync.Mutex
	var seen []string // "create KEY", "part KEY", "complete KEY", in order
	p.Add(faultproxy.Rule{Match: func(r *http.Request) bool {
		q := r.URL.Query()
		what := ""
		switch {
		case r.Method == http.MethodPost && q.Has("uploads"):
			what = "create"
		case r.Method == http.MethodPut && q.Has("partNumber"):
			what = "part"
		case r.Method == http.MethodPost && q.Has("uploadId"):
			what = "complete"
		}
		if what != "" {
			mu.Lock()
			seen = append(seen, what+" "+r.URL.Path)
			mu.Unlock()
		}
		return what == "part"
	}, Fault: faultproxy.Delay(time.Second)})
	if _, err := e.Run(ctx, set); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var keys []string // in the order their uploads began
	at := map[string]int{}
	for i, s := range seen {
		what, key, _ := strings.Cut(s, " ")
		if what == "create" {
			keys = append(keys, key)
		}
		if _, ok := at[what+" "+key]; !ok || what == "complete" {
			at[what+" "+key] = i
		}
	}
	if len(keys) != 2 {
		t.Fatalf("%d multipart uploads, want 2: %v", len(keys), seen)
	}
	if at["part "+keys[1]] > at["complete "+keys[0]] {
		t.Fatalf("the second stream sent its first part after the first one completed: %v", seen)
	}
	if b.Peak() > limit || b.InUse() != 0 {
		t.Fatalf("budget peak %d of %d, %d still held", b.Peak(), limit, b.InUse())
	}
}
