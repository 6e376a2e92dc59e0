package chunk

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

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

// TestFastCodersCutChunksIntoFrames: a chunk the fast coders code is a run
// of one-block frames of fastFrame raw bytes under its one seek-table
// entry; a chunk at the configured level stays one frame. Each chunk
// decodes alone, and `zstd -d` reads the whole object.
func TestFastCodersCutChunksIntoFrames(t *testing.T) {
	zstdCLI, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal("the zstd command is missing: run `make tools` (installs Debian's zstd)")
	}
	const cs = 1 << 20
	text := bytes.Repeat([]byte("nb-1-big-Index.db partition key "), cs/32)
	for _, tc := range []struct {
		name   string
		raw    []byte
		frames int
	}{
		{"literals as they are", randomWithRuns(2*cs+fastFrame+17, 7), cs / fastFrame},
		{"literals entropy-coded", fewSymbols(2*cs+fastFrame+17, 8), cs / fastFrame},
		{"the configured level", append(text, text...), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := newEncoder(t, Options{Mode: Auto, ChunkSize: cs})
			obj, l := enc.EncodeBytes(nil, tc.raw)
			if len(l.Chunks) < 2 {
				t.Fatalf("%d chunks, want at least 2", len(l.Chunks))
			}
			c := l.Chunks[0]
			if !c.Compressed {
				t.Fatal("the first chunk is stored raw, want it compressed")
			}
			sizes, blocks := frameSizes(t, obj[c.StoredOff:c.StoredOff+c.StoredLen])
			if len(sizes) != tc.frames {
				t.Fatalf("the first chunk is %d frames (raw sizes %v), want %d", len(sizes), sizes, tc.frames)
			}
			if tc.frames > 1 && blocks != tc.frames {
				t.Fatalf("the first chunk's %d frames have %d blocks, want one each: coded with history", len(sizes), blocks)
			}
			var sum uint64
			for _, n := range sizes {
				sum += n
			}
			if sum != uint64(c.RawLen) {
				t.Fatalf("the frames hold %d raw bytes, the chunk %d", sum, c.RawLen)
			}
			checkStream(t, obj, l.Mode, tc.raw)
			in := filepath.Join(t.TempDir(), "obj.zst")
			if err := os.WriteFile(in, obj, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(zstdCLI, "-d", "-c", "-q", in).Output()
			if err != nil {
				t.Fatalf("zstd -d: %v", err)
			}
			if !bytes.Equal(out, tc.raw) {
				t.Fatalf("zstd -d gave %d bytes that differ from the %d raw bytes", len(out), len(tc.raw))
			}
		})
	}
}

// frameSizes walks the zstd frames of b and returns each one's content
// size, and the number of blocks.
func frameSizes(t *testing.T, b []byte) (sizes []uint64, blocks int) {
	t.Helper()
	for len(b) > 0 {
		var h zstd.Header
		if err := h.Decode(b); err != nil || !h.HasFCS {
			t.Fatalf("frame %d: header %+v: %v", len(sizes), h, err)
		}
		n, nb, err := walkFrame(b)
		if err != nil {
			t.Fatalf("frame %d: %v", len(sizes), err)
		}
		sizes, blocks, b = append(sizes, h.FrameContentSize), blocks+nb, b[n:]
	}
	return sizes, blocks
}

// TestGroupsAreCodedFast: in Auto mode, at a level up to zstd's default, a
// group of small files is coded by the fast coder, entropy-coded literals
// and all; a deeper level, or Zstd mode, codes it at the level asked. Each
// way it decodes to the group.
func TestGroupsAreCodedFast(t *testing.T) {
	var group []byte
	for i := range 24 { // small components, a little alike
		group = append(group, fmt.Sprintf("nb-%d-big-Statistics.db min %d max %d ", i, i*7, i*13)...)
		group = append(group, fewSymbols(4000, uint64(i))...)
	}
	for _, tc := range []struct {
		name  string
		o     Options
		coder func(e *Encoder) *zstd.Encoder
	}{
		{"auto, default level", Options{Mode: Auto}, func(e *Encoder) *zstd.Encoder { return e.fast }},
		{"auto, level 1", Options{Mode: Auto, Level: 1}, func(e *Encoder) *zstd.Encoder { return e.fast }},
		{"auto, level 9", Options{Mode: Auto, Level: 9}, func(e *Encoder) *zstd.Encoder { return e.zenc }},
		{"zstd, default level", Options{Mode: Zstd}, func(e *Encoder) *zstd.Encoder { return e.zenc }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEncoder(t, tc.o)
			obj, l := e.EncodeGroup(nil, group)
			if len(l.Chunks) != 1 || !l.Chunks[0].Compressed {
				t.Fatalf("the group is %d chunks (compressed: %v), want one compressed", len(l.Chunks), l.Chunks[0].Compressed)
			}
			c := l.Chunks[0]
			want := tc.coder(e).EncodeAll(group, nil)
			if got := obj[c.StoredOff : c.StoredOff+c.StoredLen]; !bytes.Equal(got, want) {
				t.Fatalf("the group is coded to %d bytes, not as its coder codes it (%d bytes)", len(got), len(want))
			}
			checkStream(t, obj, l.Mode, group)
			if tc.o.Mode == Auto && tc.o.Level <= fastMaxLevel {
				if plain, _ := e.EncodeBytes(nil, group); bytes.Equal(plain, obj) {
					t.Fatal("EncodeBytes codes the same bytes as a group: the group was not coded apart")
				}
			}
		})
	}
}
