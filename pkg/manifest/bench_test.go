package manifest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// benchComponents are a Cassandra sstable's files, as the bench's files
// section makes them.
var benchComponents = []string{"CompressionInfo.db", "Data.db", "Digest.crc32", "Filter.db", "Index.db",
	"Statistics.db", "Summary.db", "TOC.txt"}

// benchFiles makes n files as a backup of a Cassandra node records them,
// in path order: small sstable components packed 8 MiB to a pack (one
// chunk each), or, with chunks > 0, large files of that many 8 MiB chunks
// stored an object each.
func benchFiles(n, chunks int) []File {
	rng := rand.New(rand.NewPCG(1, 2))
	hexOf := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return hex.EncodeToString(b)
	}
	const chunkSize = 8 << 20
	tables := make([]string, 20)
	for i := range tables {
		tables[i] = fmt.Sprintf("telemetry/events_%02d-%s", i, hexOf(16))
	}
	mtime := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	files := make([]File, 0, n)
	var pack string
	var off int64
	for i := 0; len(files) < n; i++ {
		comp := benchComponents[i%len(benchComponents)]
		sst := i / len(benchComponents)
		f := File{
			Path:    fmt.Sprintf("%s/nb-%d-big-%s", tables[sst%len(tables)], 1000000+sst/len(tables), comp),
			ModTime: mtime.Add(time.Duration(rng.Int64N(int64(time.Hour)))),
			Mode:    0o644, SHA256: hexOf(32), Compression: chunk.Zstd, ChunkSize: chunkSize,
			Ino: 1<<20 + uint64(i),
		}
		if comp == "Data.db" {
			f.Digest = fmt.Sprint(rng.Uint32())
		}
		if chunks == 0 {
			f.Size = 1024 + rng.Int64N(5<<10)
			stored := f.Size*9/10 + 20
			if pack == "" || off > 8<<20 {
				pack, off = hexOf(16), 0
			}
			f.Key, f.Offset = PackKey(pack), off
			f.Chunks = []Chunk{{Stored: stored, CRC32C: rng.Uint32()}}
			f.StoredSize = stored + chunk.SeekTableSize(1)
			off += f.StoredSize
		} else {
			f.Size = int64(chunks-1)*chunkSize + 1 + rng.Int64N(chunkSize)
			f.Key = ObjectKey(f.SHA256, true, chunkSize)
			for c := range chunk.NumChunks(f.Size, chunkSize) {
				s := int64(chunkSize) + 3*(chunkSize>>17)
				if c == chunks-1 {
					s = f.Size - int64(c)*chunkSize + 3
				}
				f.Chunks = append(f.Chunks, Chunk{Stored: s, CRC32C: rng.Uint32()})
				f.StoredSize += s
			}
			f.StoredSize += chunk.SeekTableSize(len(f.Chunks))
		}
		files = append(files, f)
	}
	sortFiles(files)
	return files
}

// benchStream is files as a stored stream manifest.
func benchStream(tb testing.TB, files []File) []byte {
	tb.Helper()
	var b bytes.Buffer
	w, err := NewWriter(&b)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range files {
		if err := w.Add(&files[i]); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	m := Manifest{ID: "20261130T120000Z.000", Kind: "cassandra", Cluster: "prod", Node: "n1"}
	head, tail, err := w.Finish(&m)
	if err != nil {
		tb.Fatal(err)
	}
	return append(append(head, b.Bytes()...), tail...)
}

// BenchmarkReader reads a stored manifest of 100,000 small packed files,
// and one of 10,000 large files of 64 chunks each, as restore, verify and
// the differential backup do: per op, one pass over all its records.
func BenchmarkReader(b *testing.B) {
	for _, bc := range []struct {
		name      string
		n, chunks int
	}{{"packed", 100000, 0}, {"chunked", 10000, 64}} {
		b.Run(bc.name, func(b *testing.B) {
			stored := benchStream(b, benchFiles(bc.n, bc.chunks))
			b.SetBytes(int64(len(stored)))
			b.ReportAllocs()
			for b.Loop() {
				x, err := NewReader(bytes.NewReader(stored))
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					_, err := x.Next()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				x.Close()
				if n != bc.n {
					b.Fatalf("%d files, want %d", n, bc.n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.n), "ns/file")
		})
	}
}

// BenchmarkParseRecord parses one small packed file's record line, as the
// catalog does for each record it looks up.
func BenchmarkParseRecord(b *testing.B) {
	files := benchFiles(8, 0)
	line, err := AppendRecord(nil, &files[1])
	if err != nil {
		b.Fatal(err)
	}
	line = line[:len(line)-1]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecord(line); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordDecode decodes small packed files' record lines alone:
// the part of BenchmarkReader that the record decoder does.
func BenchmarkRecordDecode(b *testing.B) {
	lines := recordLinesOf(b, benchFiles(1000, 0))
	b.ReportAllocs()
	var d recordDecoder
	var r record
	for i := 0; b.Loop(); i++ {
		if err := d.decode(lines[i%len(lines)], &r); err != nil {
			b.Fatal(err)
		}
	}
}
