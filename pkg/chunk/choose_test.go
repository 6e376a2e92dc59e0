package chunk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/s3bak/s3bak/pkg/testfixture"
)

// fewSymbols is random bytes drawn from 32 values: few matches worth
// coding, but literals that entropy coding shrinks by a third, like LZ4
// output, whose literals are the table's own bytes.
func fewSymbols(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = "0123456789abcdefghijklmnopqrstuv"[r.IntN(32)]
	}
	return b
}

// randomWithRuns is 4 KiB blocks of random bytes that end in a repeated
// run: compressed data with a little redundancy left, as the bench models
// an LZ4 Data.db.
func randomWithRuns(n int, seed uint64) []byte {
	b := testfixture.RandomBytes(n, seed)
	for off := 0; off+4096 <= n; off += 4096 {
		copy(b[off+3680:off+4096], bytes.Repeat([]byte("col\x00\x02\x00\x00\x01"), 52))
	}
	return b
}

func TestChooseByTheSamples(t *testing.T) {
	// 1 MiB: samples of 4 KiB, the smallest; 8 MiB: of 32 KiB, the largest.
	for _, cs := range []int{1 << 20, 8 << 20} {
		t.Run(fmt.Sprintf("chunk %d KiB", cs>>10), func(t *testing.T) { chooseByTheSamples(t, cs) })
	}
}

func chooseByTheSamples(t *testing.T, cs int) {
	text := bytes.Repeat([]byte("nb-1-big-Index.db partition key "), cs/32)
	for _, tc := range []struct {
		name  string
		level int
		raw   []byte
		want  string
	}{
		{"random bytes are stored raw", 0, testfixture.RandomBytes(cs, 1), "raw"},
		{"random literals with runs: fastest level, literals as they are", 0, randomWithRuns(cs, 2), "fastRaw"},
		{"skewed literals without matches: fastest level, literals entropy-coded", 0, fewSymbols(cs, 3), "fast"},
		{"text: the configured level", 0, text, "configured"},
		{"above level 3 the configured level codes compressed data too", 9, fewSymbols(cs, 3), "configured"},
		{"above level 3 random bytes are still stored raw", 9, testfixture.RandomBytes(cs, 1), "raw"},
		{"a chunk no larger than the samples: the configured level", 0, fewSymbols(samples*sampleSize, 4), "configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEncoder(t, Options{Mode: Auto, ChunkSize: cs, Level: tc.level})
			got := "configured"
			switch e.choose(tc.raw) {
			case nil:
				got = "raw"
			case e.fast:
				got = "fast"
			case e.fastRaw:
				got = "fastRaw"
			}
			if got != tc.want {
				t.Fatalf("choose = %s, want %s", got, tc.want)
			}
		})
	}
}

// A chunk is sampled in proportion to its size, so that a file of a few
// hundred KiB is not compressed half again to decide how.
func TestSamplesAreASixtyFourthOfTheChunk(t *testing.T) {
	for _, tc := range []struct{ chunk, sample int }{
		{128<<10 + 1, minSample},
		{512 << 10, minSample},
		{2 << 20, 8 << 10},
		{8 << 20, sampleSize},
		{64 << 20, sampleSize},
	} {
		if got := sampleSizeFor(tc.chunk); got != tc.sample {
			t.Errorf("sampleSizeFor(%d) = %d, want %d", tc.chunk, got, tc.sample)
		}
	}
}

// Data the fastest level finds no matches in, but whose literals entropy
// coding shrinks, is compressed: sampling without literal coding once took
// it for incompressible and stored LZ4 SSTables raw.
func TestAutoCompressesLiteralsWithoutMatches(t *testing.T) {
	const cs = 1 << 20
	raw := fewSymbols(4*cs, 5)
	enc := newEncoder(t, Options{Mode: Auto, ChunkSize: cs})
	obj, l := enc.EncodeBytes(nil, raw)
	for i, c := range l.Chunks {
		if !c.Compressed || c.StoredLen > cs*7/10 {
			t.Fatalf("chunk %d: compressed %v, %d of %d bytes; want compressed to at most 70%%", i, c.Compressed, c.StoredLen, c.RawLen)
		}
	}
	checkStream(t, obj, l.Mode, raw)
}
