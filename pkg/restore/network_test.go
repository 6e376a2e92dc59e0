package restore

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/testfixture"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// smallPieces makes getSpan cut spans into pieces of 64 KiB, at most 4,
// for the test, on as many CPUs (piecesFor) whatever the machine has.
func smallPieces(t *testing.T) {
	oldSize, oldMax, oldProcs := pieceSize, maxPieces, runtime.GOMAXPROCS(4)
	t.Cleanup(func() { pieceSize, maxPieces = oldSize, oldMax; runtime.GOMAXPROCS(oldProcs) })
	pieceSize, maxPieces = 64<<10, 4
}

// TestGroupsInPieces: from a bucket a network away the bytes of one group
// are fetched as several ranged GETs at once (cuts); from one near by, a
// GET a group, which costs the server less. Either way the file restores
// byte for byte; a group of raw blocks holds only its stored bytes,
// decoded where they were fetched.
func TestGroupsInPieces(t *testing.T) {
	smallPieces(t)
	node := testNode(t)
	raw := testfixture.RandomBytes(3<<20+4321, 50)
	f, _ := store(t, node, "ks/t-1/nb-20-big-Data.db", raw, chunk.Auto, 256<<10)
	chunks := layout(f)
	groups := plan(f, chunks, maxGroupMemory)
	pieces := 0
	for _, g := range groups {
		if !g.inPlace || g.memory(f) != g.storedLen {
			t.Fatalf("group %+v of raw blocks: in place %v, memory %d, want its stored bytes %d", g, g.inPlace, g.memory(f), g.storedLen)
		}
		n := len(cuts(g.storedOff, g.storedLen, maxPieces))
		if n < 2 {
			t.Fatalf("a group of %d bytes in %d pieces, want several", g.storedLen, n)
		}
		pieces += n
	}
	for _, tc := range []struct {
		name   string
		pieces int           // Options.Pieces
		delay  time.Duration // of every request
		gets   int
	}{
		// (A loopback MinIO is near, but a loaded machine can make any one
		// round trip 5 ms: the near case is piecesFor's, below.)
		{"one GET a group", 1, 0, len(groups)},
		{"by the round trip, 10ms away", 0, 2 * transfer.NearRoundTrip, pieces},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := bounded(t, 60*time.Second)
			p, c := proxied(t, transfer.Options{})
			if tc.delay > 0 {
				p.Add(faultproxy.Rule{Fault: faultproxy.Delay(tc.delay)})
			}
			// The bucket's round trip is known before the restore, as it
			// is to s3bak's commands: they read the manifest first.
			if _, err := c.Head(ctx, node.Root()+f.Key); err != nil {
				t.Fatal(err)
			}
			rule := p.Add(faultproxy.Rule{Match: getsOf(node, f)})
			heads := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodHead, f.Key)})
			target := t.TempDir()
			b := budget.New(4 * maxGroupMemory) // groups of maxGroupMemory, as planned above
			if _, err := Run(ctx, c, node, backupOf(node, f), Options{Target: target, Budget: b, Pieces: tc.pieces}); err != nil {
				t.Fatal(err)
			}
			checkTree(t, target, map[string][]byte{f.Path: raw})
			if rule.Seen() != tc.gets || heads.Seen() != 1 {
				t.Fatalf("%d GETs and %d HEADs of the object, want %d GETs (%d groups) and its size checked once", rule.Seen(), heads.Seen(), tc.gets, len(groups))
			}
			if b.Peak() > b.Size() || b.InUse() != 0 {
				t.Fatalf("budget peak %d of %d, %d still held", b.Peak(), b.Size(), b.InUse())
			}
		})
	}
}

// A bucket near by is read a span a GET; one a network away, or not
// measured yet, in as many pieces as the node has CPUs, up to maxPieces.
func TestPiecesFollowTheRoundTripAndTheCPUs(t *testing.T) {
	for _, tc := range []struct {
		rtt  time.Duration
		cpus int
		want int
	}{
		{800 * time.Microsecond, 8, 1},
		{transfer.NearRoundTrip - 1, 8, 1},
		{transfer.NearRoundTrip, 8, maxPieces},
		{20 * time.Millisecond, 8, maxPieces},
		{0, 8, maxPieces},
		{20 * time.Millisecond, 2, 2},
		{20 * time.Millisecond, 1, 1},
		{20 * time.Millisecond, 0, 1},
	} {
		if got := piecesFor(tc.rtt, tc.cpus); got != tc.want {
			t.Errorf("piecesFor(%s, %d CPUs) = %d, want %d", tc.rtt, tc.cpus, got, tc.want)
		}
	}
}

// TestCuts: pieces cover the span exactly, in order, at most maxPieces of
// them, and inner cuts on block boundaries.
func TestCuts(t *testing.T) {
	for _, tc := range []struct{ off, n int64 }{
		{0, 8<<20 + 207}, {8<<20 + 207 + 13, 8<<20 + 207}, {5, 3 << 20}, {123456789, 16 << 20}, {7, 2 << 20}, {0, 1},
	} {
		ends := cuts(tc.off, tc.n, maxPieces)
		if len(ends) > maxPieces || ends[len(ends)-1] != tc.n {
			t.Fatalf("cuts(%d, %d) = %v", tc.off, tc.n, ends)
		}
		prev := int64(0)
		for i, e := range ends {
			if e <= prev {
				t.Fatalf("cuts(%d, %d) = %v: piece %d of %d bytes", tc.off, tc.n, ends, i, e-prev)
			}
			if i < len(ends)-1 && (tc.off+e)%pieceAlign != 0 {
				t.Fatalf("cuts(%d, %d) = %v: cut %d is not on a block boundary", tc.off, tc.n, ends, i)
			}
			prev = e
		}
		if tc.n > int64(maxPieces)*pieceSize && len(ends) != maxPieces {
			t.Fatalf("cuts(%d, %d) = %v, want %d pieces", tc.off, tc.n, ends, maxPieces)
		}
	}
}

// TestSpanPastTheObject: a span whose later piece starts where a short
// object ends (that GET is refused, 416) fails as one GET of the span
// would, an object that ends there: ErrVerify.
func TestSpanPastTheObject(t *testing.T) {
	smallPieces(t)
	ctx := bounded(t, 60*time.Second)
	key := testNode(t).Root() + "data/packs/short.pack"
	const span = 256 << 10
	ends := cuts(0, span, maxPieces)
	if len(ends) < 2 {
		t.Fatalf("cuts %v", ends)
	}
	if err := client.PutBytes(ctx, key, testfixture.RandomBytes(int(ends[0]), 51), ""); err != nil {
		t.Fatal(err)
	}
	err := getSpan(ctx, client, key, 0, make([]byte, span), maxPieces)
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "ends at") {
		t.Fatalf("getSpan past the end of the object: %v, want ErrVerify: the object ends at %d", err, ends[0])
	}
}

// TestDamagedRawBlocks: a chunk of raw blocks with a changed byte fails its
// CRC32C, and one whose frame is no longer raw blocks goes to the zstd
// decoder: each is ErrVerify naming the chunk, after a fresh read, and
// leaves nothing.
func TestDamagedRawBlocks(t *testing.T) {
	const cs = 256 << 10
	for _, tc := range []struct {
		name   string
		change func([]byte) []byte
	}{
		{"payload", func(b []byte) []byte { b[rawFrameLen(cs)+100] ^= 1; return b }},
		{"block-type", func(b []byte) []byte {
			b[rawFrameLen(cs)+rawFrameHeader] |= 2 << 1 // chunk 1's first block: RLE
			return b
		}},
		{"magic", func(b []byte) []byte { b[rawFrameLen(cs)] ^= 0xff; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := manifest.Node{Cluster: "c", Name: "raw-" + tc.name}
			raw := testfixture.RandomBytes(4*cs+99, 52)
			f, _ := store(t, node, "ks/t-1/nb-21-big-Data.db", raw, chunk.Auto, cs)
			if c := layout(f)[1]; !rawFramed(c) {
				t.Fatalf("chunk 1 (%d stored bytes) is not raw blocks", c.StoredLen)
			}
			rewrite(t, node, f, tc.change)
			target := t.TempDir()
			_, err := Run(context.Background(), client, node, backupOf(node, f), Options{Target: target})
			if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "chunk 1 of") || !strings.Contains(err.Error(), "fresh read") {
				t.Fatalf("restore: %v, want ErrVerify naming chunk 1, after a fresh read", err)
			}
			t.Logf("restore failed as it should: %v", err)
			checkTree(t, target, nil)
		})
	}
}

// TestRawFrameParsing: isRawFrame takes exactly the frames of raw blocks
// that decode to the recorded length, and unframe gives their bytes.
func TestRawFrameParsing(t *testing.T) {
	enc, err := chunk.NewEncoder(chunk.Options{Mode: chunk.Auto, ChunkSize: 300 << 10, Level: 3, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	raw := testfixture.RandomBytes(300<<10, 53)
	obj, l := enc.EncodeBytes(nil, raw)
	frame := obj[:l.Chunks[0].StoredLen]
	if !rawFramed(l.Chunks[0]) || !isRawFrame(frame, int64(len(raw))) {
		t.Fatalf("the encoder's frame of %d raw bytes (%d stored) is not taken as raw blocks", len(raw), len(frame))
	}
	if isRawFrame(frame, int64(len(raw))-1) || isRawFrame(frame[:len(frame)-1], int64(len(raw))) || isRawFrame(append(slices.Clone(frame), 0), int64(len(raw))) {
		t.Fatal("a frame of another length, cut short or followed by more is taken as raw blocks")
	}
	got := slices.Clone(frame)
	if n := unframe(got, got); n != len(raw) || !slices.Equal(got[:n], raw) {
		t.Fatalf("unframe in place: %d bytes, equal %v", n, slices.Equal(got[:n], raw))
	}
}

// TestLargestFilesFirst: the files not in packs are handed out largest
// first, so that the longest transfers start first.
func TestLargestFilesFirst(t *testing.T) {
	files := []manifest.File{
		{Path: "a", StoredSize: 10}, {Path: "b", StoredSize: 3000}, {Path: "c", StoredSize: 10},
		{Path: "d", Key: manifest.PackKey("p"), StoredSize: 5}, {Path: "e", StoredSize: 200},
	}
	_, rest := splitPacked(files)
	var order []string
	for _, f := range rest {
		order = append(order, f.Path)
	}
	if want := []string{"b", "e", "a", "c"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}
