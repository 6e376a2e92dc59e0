package catalog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// compressIndex compresses an index's JSON as SaveIndex does.
func compressIndex(t testing.TB, raw []byte) []byte {
	t.Helper()
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	return e.EncodeAll(raw, nil)
}

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// indexAllocBound is what decoding an index of n compressed bytes may
// allocate: the decoder's own state, plus a generous multiple of n for the
// decompressed JSON (a real index compresses about 5×) and what it decodes
// into. A zstd stream can inflate 32,768× (RLE blocks); such a stream must
// not make the decoder allocate in proportion.
func indexAllocBound(n int) uint64 { return 16<<20 + 4096*uint64(n) }

// generatedIndex is an index built by the code itself: two backups'
// objects (compressed with chunks, uncompressed, packed), a fingerprint and
// a partial upload.
func generatedIndex(t testing.TB) []byte {
	t.Helper()
	node := manifest.Node{Cluster: "prod", Name: "cass-1"}
	x := NewIndex(node)
	at := time.Date(2026, 11, 25, 2, 0, 0, 123e6, time.UTC)
	sha := func(i int) string { return strings.Repeat(strconv.Itoa(i%10), 64) }
	m := &manifest.Manifest{Schema: 1, ID: manifest.NewID(at), Kind: "cassandra", Cluster: node.Cluster, Node: node.Name,
		Tag: "daily", Started: at, Finished: at.Add(time.Minute), Files: []manifest.File{
			{Path: "ks/t-1/nb-1-big-Data.db", Size: 10, SHA256: sha(1), Key: manifest.ObjectKey(sha(1), true, 8<<20),
				StoredSize: 10 + chunk.SeekTableSize(1), Compression: chunk.Zstd, ChunkSize: 8 << 20,
				Chunks: []manifest.Chunk{{Stored: 10, CRC32C: 12345}}},
			{Path: "ks/t-1/nb-1-big-TOC.txt", Size: 5, SHA256: sha(2), Key: manifest.PackKey("p1"), Offset: 99,
				StoredSize: 5, Compression: chunk.None},
		}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	x.AddBackup(m)
	f := m.Files[1]
	f.SHA256, f.Key, f.Offset = sha(3), manifest.ObjectKey(sha(3), false, 0), 0
	x.Record("nb-1-big-TOC.txt|42|5|1796043153476299403|", &f)
	x.SetPartial(&Partial{Key: manifest.ObjectKey(sha(4), true, 8<<20), UploadID: "up-1", Size: 20 << 20, ChunkSize: 8 << 20,
		Chunks: []manifest.Chunk{{Stored: 100, CRC32C: 1}, {Stored: 200, CRC32C: 2}},
		Parts:  []transfer.Part{{Number: 1, ETag: `"e1"`, Size: 300}}, Started: at})
	raw, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// rleBomb is a zstd frame of RLE blocks of 128 KiB each: 4 bytes of input
// per block. fcs, when not 0, is the content size the frame header claims.
func rleBomb(blocks int, fcs uint64) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd}
	if fcs == 0 {
		b = append(b, 0x00, 0x38) // no content size; window 128 KiB
	} else {
		b = append(b, 0xc0, 0x38) // 8-byte content size; window 128 KiB
		b = binary.LittleEndian.AppendUint64(b, fcs)
	}
	for i := range blocks {
		h := uint32(128<<10)<<3 | 1<<1 // RLE block of 128 KiB
		if i == blocks-1 {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), ' ')
	}
	return b
}

// FuzzDecodeIndex feeds decodeIndex what a bucket could hold instead of a
// node's index. With compressed false the input is the index's JSON, which
// the test compresses as SaveIndex does, so that mutations reach the JSON;
// with compressed true it is the object itself. The committed corpus
// (testdata/fuzz/FuzzDecodeIndex) holds the indexes s3bak wrote for a
// Cassandra node after three backups and for an HBase node, in both forms.
// decodeIndex never panics, allocates within indexAllocBound, and whatever
// it accepts validates again and encodes and decodes to the same index.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(generatedIndex(f), false)
	f.Add(compressIndex(f, generatedIndex(f)), true)
	f.Add([]byte(`{"schema":1,"cluster":"c","node":"n","objects":{},"hints":{"a":"b"},"partials":{"k":null}}`), false)
	f.Add(rleBomb(1, 1<<30-1), true)
	f.Add(rleBomb(2, 0), true)
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte, compressed bool) {
		if !compressed {
			b = e.EncodeAll(b, nil)
		}
		var x *Index
		var err error
		if n := allocated(func() { x, err = decodeIndex(b) }); n > indexAllocBound(len(b)) {
			t.Fatalf("decoding %d bytes allocated %d", len(b), n)
		}
		if err != nil {
			return
		}
		if err := x.validate(); err != nil {
			t.Fatalf("an accepted index does not validate again: %v", err)
		}
		for sha, o := range x.Objects {
			if manifest.CheckKey(o.Key) != nil || o.Size < 0 || o.StoredSize < 0 || o.Offset < 0 || len(sha) != 64 {
				t.Fatalf("accepted object %s: %+v", sha, o)
			}
		}
		for _, s := range x.Backups {
			if manifest.CheckName("backup id", s.ID) != nil {
				t.Fatalf("accepted backup id %q", s.ID)
			}
		}
		for key, p := range x.Partials {
			if p.Key != key || manifest.CheckKey(key) != nil || p.ChunkSize <= 0 {
				t.Fatalf("accepted partial %s: %+v", key, p)
			}
		}
		raw, err := json.Marshal(x)
		if err != nil {
			t.Fatalf("an accepted index does not encode: %v", err)
		}
		again, err := decodeIndex(e.EncodeAll(raw, nil))
		if err != nil {
			t.Fatalf("an accepted index, encoded, is refused: %v\n%s", err, raw)
		}
		raw2, err := json.Marshal(again)
		if err != nil || !bytes.Equal(raw, raw2) {
			t.Fatalf("encode and decode changed the index (%v):\n%s\n---\n%s", err, raw, raw2)
		}
	})
}

// readCorpus reads the committed corpus of a fuzz target whose arguments
// are a []byte and a bool.
func readCorpus(t *testing.T, name string) map[string]struct {
	b          []byte
	compressed bool
} {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus for %s (%v)", name, err)
	}
	out := map[string]struct {
		b          []byte
		compressed bool
	}{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, len(data)+1)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		if len(lines) != 3 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Fatalf("%s: not a corpus file of ([]byte, bool)", file)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		c, err := strconv.ParseBool(strings.TrimSuffix(strings.TrimPrefix(lines[2], "bool("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out[filepath.Base(file)] = struct {
			b          []byte
			compressed bool
		}{[]byte(s), c}
	}
	return out
}

// TestDecodeIndexMemory: decoding the largest index of the corpus, and
// frames that claim or hold more than they are worth, allocates within
// indexAllocBound.
func TestDecodeIndexMemory(t *testing.T) {
	var largest []byte
	for name, in := range readCorpus(t, "FuzzDecodeIndex") {
		b := in.b
		if !in.compressed {
			b = compressIndex(t, b)
		}
		if _, err := decodeIndex(b); err != nil && strings.HasPrefix(name, "real-") {
			t.Errorf("%s: %v", name, err)
		}
		if len(b) > len(largest) {
			largest = b
		}
	}
	for name, b := range map[string][]byte{
		"largest corpus index":                     largest,
		"a frame claiming 1 GiB with 128 KiB":      rleBomb(1, 1<<30-1),
		"a frame claiming more than maxIndexSize":  rleBomb(1, maxIndexSize+1),
		"8 MiB of RLE blocks, with content size":   rleBomb(64, 64*128<<10),
		"a frame that is cut after its header":     rleBomb(1, 1<<30-1)[:14],
		"two frames of 128 KiB, no content size":   append(rleBomb(1, 0), rleBomb(1, 0)...),
		"an RLE block that claims 128 KiB, 2 of 3": rleBomb(2, 0)[:9],
	} {
		runtime.GC()
		var err error
		n := allocated(func() { _, err = decodeIndex(b) })
		t.Logf("%s: %d bytes in, %d allocated (%v)", name, len(b), n, err)
		if bound := indexAllocBound(len(b)); n > bound {
			t.Errorf("%s: %d bytes allocated %d, over %d", name, len(b), n, bound)
		}
	}
}

// TestDecodeIndexBombIsBounded: a zstd stream of RLE blocks inflates
// 32,768×; bounded only by maxIndexSize (1 GiB), 262 bytes allocated 47 MB
// and 32 KB 5 GiB (3.3 GiB of heap at once), so whoever could write the
// node's index.json.zst could make its backups, list and purge run out of
// memory. chunk.Inflate also bounds the decompressed size by the
// compressed size (1,024× plus 4 MiB; a real index compresses about 5×,
// one of 50,000 summaries of identical backups 105×).
func TestDecodeIndexBombIsBounded(t *testing.T) {
	for _, blocks := range []int{64, 2000} {
		b := rleBomb(blocks, 0)
		runtime.GC()
		n := allocated(func() { decodeIndex(b) })
		if bound := indexAllocBound(len(b)); n > bound {
			t.Errorf("%d bytes allocated %d, over %d", len(b), n, bound)
		}
	}
}
