package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/testfixture"
	"github.com/s3bak/s3bak/pkg/transfer"
)

var client *transfer.Client

func TestMain(m *testing.M) {
	os.Exit(miniotest.Main(m, func(*miniotest.Server) (err error) {
		client, err = transfer.New(context.Background(), transfer.Options{Bucket: "restore"})
		return err
	}, "restore"))
}

// mixedData alternates runs of text (about 0.15 of its size under zstd)
// with random bytes, so an object holds both compressed and raw chunks.
func mixedData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"partition ", "clustering ", "cassandra ", "sstable ", "tombstone ", "keyspace ", "row "}
	b := make([]byte, 0, n)
	for len(b) < n {
		run := min(n-len(b), 32<<10+r.IntN(160<<10))
		if r.IntN(2) == 0 {
			for end := len(b) + run; len(b) < end; {
				b = append(b, words[r.IntN(len(words))]...)
			}
			b = b[:min(len(b), n)]
			continue
		}
		for range run {
			b = append(b, byte(r.Uint32()))
		}
	}
	return b
}

// store encodes raw as a backup does and puts the object in the bucket
// under node, returning its manifest entry.
func store(t *testing.T, node manifest.Node, path string, raw []byte, mode chunk.Mode, chunkSize int) (manifest.File, *chunk.Layout) {
	t.Helper()
	enc, err := chunk.NewEncoder(chunk.Options{Mode: mode, ChunkSize: chunkSize, Level: 3, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	obj, l := enc.EncodeBytes(nil, raw)
	sum := sha256.Sum256(raw)
	f := manifest.File{
		Path: path, Size: int64(len(raw)), ModTime: time.Unix(1_700_000_000, 0).UTC(), Mode: 0o640,
		SHA256: hex.EncodeToString(sum[:]), StoredSize: l.StoredSize, Compression: l.Mode,
	}
	f.Key = manifest.ObjectKey(f.SHA256, l.Mode == chunk.Zstd, l.ChunkSize)
	if l.Mode == chunk.Zstd {
		f.ChunkSize = l.ChunkSize
		f.Chunks = manifest.ChunksOf(l)
	}
	if len(obj) > 0 {
		if err := client.PutBytes(context.Background(), node.Root()+f.Key, obj, ""); err != nil {
			t.Fatal(err)
		}
	}
	return f, l
}

func testNode(t *testing.T) manifest.Node {
	return manifest.Node{Prefix: "p", Cluster: "c", Name: t.Name()}
}

func backupOf(node manifest.Node, files ...manifest.File) *manifest.Manifest {
	return &manifest.Manifest{Schema: 1, ID: "20260101T000000Z", Kind: "cassandra", Cluster: node.Cluster, Node: node.Name, Files: files}
}

// rewrite replaces an object's bytes in the bucket with change(bytes).
func rewrite(t *testing.T, node manifest.Node, f manifest.File, change func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	key := node.Root() + f.Key
	b, err := client.GetBytes(ctx, key, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.PutBytes(ctx, key, change(b), ""); err != nil {
		t.Fatal(err)
	}
}

// checkTree compares the regular files under dir with want: no more, no
// fewer (temporary files included), same bytes and mode.
func checkTree(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	got, err := testfixture.TreeFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		names := make([]string, 0, len(got))
		for p := range got {
			names = append(names, p)
		}
		t.Fatalf("target holds %d files %v, want %d", len(got), names, len(want))
	}
	for p, b := range want {
		if !bytes.Equal(got[p], b) {
			t.Fatalf("%s: restored %d bytes differ from the %d backed up", p, len(got[p]), len(b))
		}
		if st, err := os.Stat(filepath.Join(dir, p)); err != nil || st.Mode().Perm() != 0o640 {
			t.Fatalf("%s: mode %v, %v; want 0640", p, st.Mode(), err)
		}
	}
}

// TestRestoreMultiChunkFile restores, byte for byte, a file of many 64 KiB
// chunks (compressed and raw, the last one short) fetched in several
// groups, next to a one-chunk file and an empty one.
func TestRestoreMultiChunkFile(t *testing.T) {
	node := testNode(t)
	big := mixedData(3<<20+12345, 1)
	small := mixedData(20000, 2)
	fBig, l := store(t, node, "ks/t-1/nb-1-big-Data.db", big, chunk.Auto, 64<<10)
	fSmall, _ := store(t, node, "ks/t-1/nb-1-big-Index.db", small, chunk.Auto, 64<<10)
	fEmpty, _ := store(t, node, "ks/t-1/nb-1-big-Filter.db", nil, chunk.Auto, 64<<10)
	if c := l.CompressedChunks(); c == 0 || c == len(l.Chunks) {
		t.Fatalf("%d of %d chunks compressed: want both kinds", c, len(l.Chunks))
	}
	if n := len(plan(fBig, layout(fBig), maxGroupMemory)); n < 2 {
		t.Fatalf("the big file is fetched in %d GETs, want several", n)
	}
	target := t.TempDir()
	res, err := Run(context.Background(), client, node, backupOf(node, fBig, fSmall, fEmpty), Options{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 3 || res.Bytes != int64(len(big)+len(small)) {
		t.Fatalf("result %+v", res)
	}
	checkTree(t, target, map[string][]byte{fBig.Path: big, fSmall.Path: small, fEmpty.Path: {}})
	v, err := Verify(context.Background(), client, node, backupOf(node, fBig, fSmall, fEmpty), VerifyOptions{Deep: true, Concurrency: 2})
	if err != nil || len(v.Problems) != 0 {
		t.Fatalf("deep verify: %v, problems %v", err, v.Problems)
	}
}

// TestReadChunkAroundACorruptChunk reads single chunks with ranged GETs,
// still after another chunk of the object is damaged, while the full
// restore of that file (and deep verify) fails naming the damaged chunk and
// leaves nothing in the target.
func TestReadChunkAroundACorruptChunk(t *testing.T) {
	ctx := context.Background()
	node := testNode(t)
	const cs = 64 << 10
	raw := mixedData(2<<20+999, 3)
	good := mixedData(300000, 4)
	f, l := store(t, node, "ks/t-1/nb-2-big-Data.db", raw, chunk.Auto, cs)
	fGood, _ := store(t, node, "ks/t-1/nb-3-big-Data.db", good, chunk.Auto, cs)
	dec, err := chunk.NewDecoder(2)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	last := len(f.Chunks) - 1
	readChunk := func(i int) ([]byte, error) { return ReadChunk(ctx, client, node, f, i, dec) }
	for _, i := range []int{0, 3, 5, last} {
		got, err := readChunk(i)
		if err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if want := raw[i*cs : min((i+1)*cs, len(raw))]; !bytes.Equal(got, want) {
			t.Fatalf("chunk %d: %d bytes differ from the file's %d", i, len(got), len(want))
		}
	}

	c3 := l.Chunks[3]
	rewrite(t, node, f, func(b []byte) []byte { b[c3.StoredOff+c3.StoredLen/2] ^= 0x40; return b })
	for _, i := range []int{2, 4, 5, last} {
		if got, err := readChunk(i); err != nil || !bytes.Equal(got, raw[i*cs:min((i+1)*cs, len(raw))]) {
			t.Fatalf("chunk %d after chunk 3 was damaged: %v", i, err)
		}
	}
	if _, err := readChunk(3); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "chunk 3 ") {
		t.Fatalf("damaged chunk 3 read: %v, want ErrVerify naming chunk 3", err)
	}

	target := t.TempDir()
	b := budget.New(1 << 20)
	_, err = Run(ctx, client, node, backupOf(node, fGood, f), Options{Target: target, Budget: b})
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("restore of a damaged object: %v, want ErrVerify", err)
	}
	if b.InUse() != 0 {
		t.Fatalf("the failed restore still holds %d bytes of its budget", b.InUse())
	}
	for _, want := range []string{f.Path, node.Root() + f.Key, "chunk 3 of"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
	t.Logf("restore failed as it should: %v", err)
	checkTree(t, target, nil)

	v, err := Verify(ctx, client, node, backupOf(node, fGood, f), VerifyOptions{Deep: true, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Problems) != 1 || v.Problems[0].Path != f.Path || !strings.Contains(v.Problems[0].Err.Error(), "chunk 3 ") {
		t.Fatalf("deep verify problems %v, want chunk 3 of %s", v.Problems, f.Path)
	}
}

// TestObjectSizeDiffersFromManifest refuses an object whose size is not the
// recorded one before using its chunk index: a HEAD for a file fetched in
// several GETs, the whole-object GET itself for a file of one.
func TestObjectSizeDiffersFromManifest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		change func([]byte) []byte
	}{
		{"multi-longer", 3<<20 + 77, func(b []byte) []byte { return append(b, 0) }},
		{"multi-shorter", 3<<20 + 77, func(b []byte) []byte { return b[:len(b)-1] }},
		{"single-longer", 5000, func(b []byte) []byte { return append(b, 0) }},
		{"single-shorter", 5000, func(b []byte) []byte { return b[:len(b)-1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node := manifest.Node{Cluster: "c", Name: "size-" + tc.name}
			f, _ := store(t, node, "ks/t-1/nb-4-big-Data.db", mixedData(tc.size, 5), chunk.Auto, 64<<10)
			if multi := len(plan(f, layout(f), maxGroupMemory)) > 1; multi != strings.HasPrefix(tc.name, "multi") {
				t.Fatalf("fetched in several GETs: %v", multi)
			}
			rewrite(t, node, f, tc.change)
			target := t.TempDir()
			_, err := Run(context.Background(), client, node, backupOf(node, f), Options{Target: target})
			if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), node.Root()+f.Key) || !strings.Contains(err.Error(), f.Path) {
				t.Fatalf("restore: %v, want ErrVerify naming the file and the key", err)
			}
			if strings.Contains(err.Error(), "chunk") {
				t.Fatalf("restore: %v: the size, not a chunk, should have failed", err)
			}
			t.Logf("restore failed as it should: %v", err)
			checkTree(t, target, nil)
		})
	}
}

// TestMemoryBudgetBoundsRestore restores several multi-chunk files at once
// under a budget of four chunks' worth: it completes, never holds more than
// the budget, and did hold more than one chunk (chunks overlapped).
func TestMemoryBudgetBoundsRestore(t *testing.T) {
	node := testNode(t)
	const cs = 64 << 10
	var files []manifest.File
	want := map[string][]byte{}
	for i := range 4 {
		raw := mixedData(1<<20+i*40000+13, uint64(10+i))
		f, _ := store(t, node, "ks/t-1/nb-"+string(rune('a'+i))+"-big-Data.db", raw, chunk.Auto, cs)
		files = append(files, f)
		want[f.Path] = raw
	}
	oneChunk := int64(2*cs + 1024) // stored (raw frame) and decoded bytes of one chunk
	b := budget.New(4 * oneChunk)
	target := t.TempDir()
	if _, err := Run(context.Background(), client, node, backupOf(node, files...), Options{Target: target, Concurrency: 3, Budget: b}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, target, want)
	if b.Peak() > b.Size() {
		t.Fatalf("peak %d bytes held, budget %d", b.Peak(), b.Size())
	}
	if b.Peak() <= oneChunk {
		t.Fatalf("peak %d bytes: chunks never overlapped (one takes up to %d)", b.Peak(), oneChunk)
	}
	if b.InUse() != 0 {
		t.Fatalf("%d bytes still held after the restore", b.InUse())
	}
	t.Logf("peak %d of %d bytes", b.Peak(), b.Size())
}

// TestMemoryBudgetBoundsVerify: a deep verify downloads and decodes as a
// restore does, within the budget it is given.
func TestMemoryBudgetBoundsVerify(t *testing.T) {
	node := testNode(t)
	const cs = 64 << 10
	var files []manifest.File
	for i := range 4 {
		f, _ := store(t, node, "ks/t-1/nb-"+string(rune('a'+i))+"-big-Data.db", mixedData(1<<20+i*40000+13, uint64(20+i)), chunk.Auto, cs)
		files = append(files, f)
	}
	oneChunk := int64(2*cs + 1024)
	b := budget.New(4 * oneChunk)
	res, err := Verify(context.Background(), client, node, backupOf(node, files...), VerifyOptions{Deep: true, Concurrency: 3, Budget: b})
	if err != nil || len(res.Problems) != 0 || res.Objects != len(files) {
		t.Fatalf("verify: %+v, %v", res, err)
	}
	if b.Peak() > b.Size() || b.Peak() <= oneChunk {
		t.Fatalf("peak %d bytes held, budget %d, one chunk %d: want more than a chunk, within the budget", b.Peak(), b.Size(), oneChunk)
	}
	if b.InUse() != 0 {
		t.Fatalf("%d bytes still held after the verify", b.InUse())
	}
	t.Logf("peak %d of %d bytes", b.Peak(), b.Size())
}

// TestRestoreUncompressed restores a file stored as itself with parallel
// ranged GETs (more than one range held at once), and a small one with a
// single GET.
func TestRestoreUncompressed(t *testing.T) {
	defer func(old int64) { rangeSize = old }(rangeSize)
	rangeSize = 256 << 10
	node := testNode(t)
	big := mixedData(5*int(rangeSize)+777, 6)
	small := mixedData(1000, 7)
	fBig, _ := store(t, node, "ks/t-1/nb-5-big-Data.db", big, chunk.None, 64<<10)
	fSmall, _ := store(t, node, "ks/t-1/nb-5-big-Index.db", small, chunk.None, 64<<10)
	if fBig.Compression != chunk.None || !strings.HasSuffix(fBig.Key, ".raw") {
		t.Fatalf("stored as %q at %s, want an uncompressed .raw object", fBig.Compression, fBig.Key)
	}
	b := budget.New(64 << 20)
	target := t.TempDir()
	if _, err := Run(context.Background(), client, node, backupOf(node, fBig, fSmall), Options{Target: target, Budget: b}); err != nil {
		t.Fatal(err)
	}
	checkTree(t, target, map[string][]byte{fBig.Path: big, fSmall.Path: small})
	if b.Peak() <= rangeSize {
		t.Fatalf("peak %d bytes: the ranges of %d bytes were never fetched in parallel", b.Peak(), rangeSize)
	}
	t.Logf("peak %d bytes, ranges of %d", b.Peak(), rangeSize)
	if _, err := ReadChunk(context.Background(), client, node, fBig, 0, nil); err == nil {
		t.Fatal("ReadChunk of an uncompressed file: no error")
	}
}

// ReadChunk, which only tests use (deadcode), fetches chunk i of a compressed file with one ranged GET and
// returns its raw bytes, checked against the chunk's CRC32C. Other chunks of
// the object are never read, so a damaged chunk elsewhere does not matter.
// A chunk that fails its check is read once more, with a fresh GET, before
// it is called corrupt (ErrVerify).
// dec may be nil, at the cost of a decoder made for this call.
//
// Chunk i holds the raw bytes [i*f.ChunkSize, min((i+1)*f.ChunkSize, f.Size)).
// A file stored without compression has no chunk index and no checksum
// per chunk: ReadChunk refuses it.
func ReadChunk(ctx context.Context, c *transfer.Client, node manifest.Node, f manifest.File, i int, dec *chunk.Decoder) ([]byte, error) {
	// f may come from anywhere; the offsets below rely on a consistent index.
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("file %s: %w", f.Path, err)
	}
	if f.Compression != chunk.Zstd {
		return nil, fmt.Errorf("file %s is stored with compression %q, without a chunk index", f.Path, f.Compression)
	}
	if i < 0 || i >= len(f.Chunks) {
		return nil, fmt.Errorf("file %s has %d chunks, there is no chunk %d", f.Path, len(f.Chunks), i)
	}
	if dec == nil {
		d, err := chunk.NewDecoder(1)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		dec = d
	}
	key := node.Root() + f.Key
	chunks := layout(f)
	ck := chunks[i]
	stored := make([]byte, ck.StoredLen)
	var raw []byte
	err := readChecked(ctx, func() error {
		if err := get(ctx, c, key, ck.StoredOff, stored, false); err != nil {
			return err
		}
		var err error
		raw, err = decodeChunk(dec, key, i, len(chunks), ck, stored, make([]byte, 0, ck.RawLen), true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", f.Path, err)
	}
	return raw, nil
}
