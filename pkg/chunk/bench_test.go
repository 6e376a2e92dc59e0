package chunk

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/s3bak/s3bak/pkg/testfixture"
)

// Benchmarks of the per-chunk work of backup and restore at the default
// chunk size. EncodeChunk and DecodeChunk run on one goroutine, so their
// MB/s is per core; EncodeTo uses every worker, as a backup of a large file
// does.
//
//	go test -run '^$' -bench . -benchtime 20x ./pkg/chunk/

const benchChunk = DefaultChunkSize

// textData compresses to about 0.15 of its size at zstd level 3, like
// uncompressed SSTable text columns.
func textData(n int) []byte {
	r := rand.New(rand.NewPCG(1, 1))
	words := []string{"partition", "clustering", "cassandra", "sstable", "tombstone", "keyspace",
		"row", "cell", "timestamp", "ttl", "value", "column"}
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, ' ')
	}
	return b[:n]
}

type benchInput struct {
	name string
	mode Mode
	raw  []byte
}

// benchInputs: text, random data as Auto stores it (sampled, then raw
// frames), random data forced through zstd (what Auto's sampling saves),
// and data compressed before (the fast coder's frames).
func benchInputs() []benchInput {
	random := testfixture.RandomBytes(benchChunk, 9)
	return []benchInput{
		{"compressible", Auto, textData(benchChunk)},
		{"random", Auto, random},
		{"random-zstd", Zstd, random},
		{"compressed-before", Auto, fewSymbols(benchChunk, 3)},
	}
}

func BenchmarkEncodeChunk(b *testing.B) {
	for _, in := range benchInputs() {
		b.Run(in.name, func(b *testing.B) {
			e := newEncoder(b, Options{Mode: in.mode, ChunkSize: benchChunk, Workers: 1})
			dst := make([]byte, 0, rawFrameSize(benchChunk))
			b.SetBytes(int64(len(in.raw)))
			for b.Loop() {
				dst, _ = e.encodeChunk(dst[:0], in.raw)
			}
			b.ReportMetric(float64(len(dst))/float64(len(in.raw)), "ratio")
		})
	}
}

func BenchmarkDecodeChunk(b *testing.B) {
	for _, in := range benchInputs() {
		b.Run(in.name, func(b *testing.B) {
			e := newEncoder(b, Options{Mode: in.mode, ChunkSize: benchChunk, Workers: 1})
			stored, cc := e.encodeChunk(nil, in.raw)
			c := Chunk{RawLen: int64(len(in.raw)), StoredLen: int64(len(stored)), Compressed: cc.compressed, CRC32C: cc.rawCRC}
			d, err := NewDecoder(1)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			dst := make([]byte, 0, len(in.raw))
			b.SetBytes(int64(len(in.raw)))
			for b.Loop() {
				if dst, err = d.DecodeChunk(dst[:0], stored, Zstd, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeTo streams a file of four and a bit chunks through every
// worker (GOMAXPROCS), reading and hashing included.
func BenchmarkEncodeTo(b *testing.B) {
	const size = 4*benchChunk + 4096
	for _, in := range benchInputs()[:2] {
		b.Run(in.name, func(b *testing.B) {
			raw := bytes.Repeat(in.raw, 5)[:size]
			e := newEncoder(b, Options{Mode: in.mode, ChunkSize: benchChunk, Workers: runtime.GOMAXPROCS(0)})
			b.SetBytes(size)
			for b.Loop() {
				if _, err := e.EncodeTo(context.Background(), io.Discard, bytes.NewReader(raw), size, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
