package chunk

import (
	"bytes"
	"context"
	"testing"

	"github.com/s3bak/s3bak/pkg/testfixture"
)

// The CRC32C of pieces combined is the CRC32C of the pieces one after the
// other, whatever their lengths: empty, a byte, across a power of two,
// the sizes of chunks and parts.
func TestCombineCRC32CIsTheCRCOfTheWhole(t *testing.T) {
	data := testfixture.RandomBytes(9<<20+7, 11)
	for _, cut := range []struct{ a, b int }{
		{0, 0}, {0, 1}, {1, 0}, {1, 1}, {3, 5}, {100, 4096}, {4096, 4095},
		{65535, 65537}, {1 << 20, 128 << 10}, {5, 8<<20 + 3}, {9<<20 + 7 - 1000, 1000},
	} {
		a, b := data[:cut.a], data[cut.a:cut.a+cut.b]
		want := CRC32C(data[:cut.a+cut.b])
		if got := CombineCRC32C(CRC32C(a), CRC32C(b), int64(len(b))); got != want {
			t.Errorf("pieces of %d and %d bytes: combined %08x, want %08x", cut.a, cut.b, got, want)
		}
	}
	// Many pieces in a row, as a part gathers chunks.
	var crc uint32
	for off := 0; off < len(data); off += 777_777 {
		p := data[off:min(off+777_777, len(data))]
		crc = CombineCRC32C(crc, CRC32C(p), int64(len(p)))
	}
	if want := CRC32C(data); crc != want {
		t.Errorf("pieces of 777,777 bytes: combined %08x, want %08x", crc, want)
	}
}

// Every coder's sums are those of the bytes it wrote: each chunk's raw and
// stored CRC32C, and EncodeBytes' whole object's, for each way a chunk is
// stored — raw frames, the fast coders' frames, the configured level, a
// chunk that coded too large and fell back to raw, an uncompressed object
// — and for EncodeFrom's chunks as they are written.
func TestCodersSumWhatTheyWrite(t *testing.T) {
	const cs = 1 << 20
	text := bytes.Repeat([]byte("nb-1-big-Index.db partition key "), 3*cs/32)
	for _, tc := range []struct {
		name string
		o    Options
		raw  []byte
	}{
		{"random: raw frames", Options{Mode: Auto}, testfixture.RandomBytes(3*cs+5, 1)},
		{"compressed before: fast frames, literals raw", Options{Mode: Auto}, randomWithRuns(3*cs, 2)},
		{"skewed literals: fast frames, literals coded", Options{Mode: Auto}, fewSymbols(3*cs+4097, 3)},
		{"text: the configured level", Options{Mode: Auto}, text},
		{"random, zstd asked: coded, too large, raw", Options{Mode: Zstd}, testfixture.RandomBytes(2*cs, 4)},
		{"uncompressed", Options{Mode: None}, testfixture.RandomBytes(2*cs+1, 5)},
		{"one byte", Options{Mode: Auto}, []byte{7}},
		{"empty", Options{Mode: Auto}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.ChunkSize = cs
			e := newEncoder(t, tc.o)
			for _, group := range []bool{false, true} {
				obj, l := e.encodeBytes(nil, tc.raw, group)
				checkSums(t, obj, l, tc.raw)
				if got, want := l.StoredCRC32C, CRC32C(obj); got != want {
					t.Errorf("group %v: object's CRC32C %08x, want %08x", group, got, want)
				}
			}
			var out bytes.Buffer
			var told []Chunk
			l, err := e.EncodeFrom(context.Background(), &out, Stream{R: bytes.NewReader(tc.raw), Size: int64(len(tc.raw)), Workers: 2,
				Chunk: func(c Chunk) { told = append(told, c) }})
			if err != nil {
				t.Fatal(err)
			}
			checkSums(t, out.Bytes(), l, tc.raw)
			for i, c := range told {
				if c != l.Chunks[i] {
					t.Errorf("EncodeFrom told chunk %d as %+v, its layout says %+v", i, c, l.Chunks[i])
				}
			}
		})
	}
}

// checkSums checks each chunk's CRC32Cs against the bytes they name.
func checkSums(t *testing.T, obj []byte, l *Layout, raw []byte) {
	t.Helper()
	for i, c := range l.Chunks {
		if got, want := c.CRC32C, CRC32C(raw[c.RawOff:c.RawOff+c.RawLen]); got != want {
			t.Errorf("chunk %d: raw CRC32C %08x, want %08x", i, got, want)
		}
		if got, want := c.StoredCRC32C, CRC32C(obj[c.StoredOff:c.StoredOff+c.StoredLen]); got != want {
			t.Errorf("chunk %d: stored CRC32C %08x, want %08x", i, got, want)
		}
	}
}
