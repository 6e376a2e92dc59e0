package chunk

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/s3bak/s3bak/pkg/testfixture"
)

// EncodeTo is EncodeFrom of a new object with the Encoder's own Workers, as the tests and
// benchmarks call it.
func (e *Encoder) EncodeTo(ctx context.Context, w io.Writer, r io.ReaderAt, size int64, want []uint32) (*Layout, error) {
	return e.EncodeFrom(ctx, w, Stream{R: r, Size: size, Want: want, Workers: e.opts.Workers})
}

// testData mixes compressible text with random (incompressible) runs, so
// both chunk kinds appear in one object.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for off := 0; off < n; {
		run := min(n-off, 1000+r.IntN(60000))
		if r.IntN(2) == 0 {
			for i := range run {
				b[off+i] = "cassandra sstable partition "[i%28]
			}
		} else {
			for i := range run {
				b[off+i] = byte(r.Uint32())
			}
		}
		off += run
	}
	return b
}

func newEncoder(t testing.TB, o Options) *Encoder {
	t.Helper()
	e, err := NewEncoder(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func newDecoder(t testing.TB) *Decoder {
	t.Helper()
	d, err := NewDecoder(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestRoundTripAroundChunkBoundaries(t *testing.T) {
	const cs = 64 << 10
	sizes := []int{0, 1, cs - 1, cs, cs + 1, 3 * cs, 3*cs - 1, 3*cs + 1}
	r := rand.New(rand.NewPCG(7, 7))
	for range 5 {
		sizes = append(sizes, r.IntN(10*cs))
	}
	for _, mode := range []Mode{Auto, Zstd, None} {
		enc := newEncoder(t, Options{Mode: mode, ChunkSize: cs, Workers: 3})
		dec := newDecoder(t)
		for _, size := range sizes {
			raw := testData(size, uint64(size))
			var obj bytes.Buffer
			l, err := enc.EncodeTo(context.Background(), &obj, bytes.NewReader(raw), int64(size), nil)
			if err != nil {
				t.Fatalf("%s/%d: encode: %v", mode, size, err)
			}
			if l.StoredSize != int64(obj.Len()) || l.RawSize != int64(size) {
				t.Fatalf("%s/%d: layout sizes %d/%d, object %d", mode, size, l.RawSize, l.StoredSize, obj.Len())
			}
			if want := NumChunks(int64(size), cs); len(l.Chunks) != want {
				t.Fatalf("%s/%d: %d chunks, want %d", mode, size, len(l.Chunks), want)
			}
			// Same bytes from the in-memory path.
			mem, ml := enc.EncodeBytes(nil, raw)
			if !bytes.Equal(mem, obj.Bytes()) || ml.StoredSize != l.StoredSize {
				t.Fatalf("%s/%d: EncodeBytes differs from EncodeTo", mode, size)
			}
			checkStream(t, obj.Bytes(), l.Mode, raw)
			checkChunks(t, dec, obj.Bytes(), l, raw)
			if mode != None && size > 0 {
				checkSeekTable(t, obj.Bytes(), l)
			}
		}
	}
}

func checkStream(t *testing.T, obj []byte, mode Mode, raw []byte) {
	t.Helper()
	var rd io.Reader = bytes.NewReader(obj)
	if mode != None {
		zr, err := zstd.NewReader(rd)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		rd = zr
	}
	got, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("stream decode: %v", err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatalf("stream decode: %d bytes differ from the %d raw bytes", len(got), len(raw))
	}
}

func checkChunks(t *testing.T, dec *Decoder, obj []byte, l *Layout, raw []byte) {
	t.Helper()
	for _, c := range l.Chunks {
		got, err := dec.DecodeChunk(nil, obj[c.StoredOff:c.StoredOff+c.StoredLen], l.Mode, c)
		if err != nil {
			t.Fatalf("chunk at %d: %v", c.RawOff, err)
		}
		if !bytes.Equal(got, raw[c.RawOff:c.RawOff+c.RawLen]) {
			t.Fatalf("chunk at %d: wrong bytes", c.RawOff)
		}
	}
}

func checkSeekTable(t *testing.T, obj []byte, l *Layout) {
	t.Helper()
	size, err := parseSeekTableFooter(obj[len(obj)-seekFooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	if size != SeekTableSize(len(l.Chunks)) {
		t.Fatalf("seek table size %d, want %d", size, SeekTableSize(len(l.Chunks)))
	}
	chunks, err := parseSeekTable(obj[int64(len(obj))-size:])
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks {
		w := l.Chunks[i]
		if c.RawOff != w.RawOff || c.RawLen != w.RawLen || c.StoredOff != w.StoredOff || c.StoredLen != w.StoredLen {
			t.Fatalf("seek table chunk %d = %+v, layout has %+v", i, c, w)
		}
	}
}

func TestAutoStoresIncompressibleChunksRaw(t *testing.T) {
	const cs = 256 << 10
	text := bytes.Repeat([]byte("nb-1-big-Index.db partition key "), cs/32)
	raw := append(testfixture.RandomBytes(cs, 1), text...)
	enc := newEncoder(t, Options{Mode: Auto, ChunkSize: cs})
	obj, l := enc.EncodeBytes(nil, raw)
	if len(l.Chunks) != 2 || l.Chunks[0].Compressed || !l.Chunks[1].Compressed {
		t.Fatalf("want [raw, compressed], got %+v", l.Chunks)
	}
	if l.Chunks[0].StoredLen != int64(rawFrameSize(cs)) {
		t.Fatalf("raw chunk stored as %d bytes, want %d", l.Chunks[0].StoredLen, rawFrameSize(cs))
	}
	if l.Chunks[1].StoredLen > cs/20 {
		t.Fatalf("text chunk compressed to only %d bytes", l.Chunks[1].StoredLen)
	}
	checkStream(t, obj, l.Mode, raw)
}

func TestNoneStoresTheFileItself(t *testing.T) {
	raw := testData(200_000, 3)
	enc := newEncoder(t, Options{Mode: None, ChunkSize: 64 << 10})
	obj, l := enc.EncodeBytes(nil, raw)
	if !bytes.Equal(obj, raw) || l.Mode != None {
		t.Fatal("mode none must store the raw bytes unchanged")
	}
}

func TestEncodeDetectsChangedFile(t *testing.T) {
	const cs = 64 << 10
	raw := testData(3*cs, 9)
	enc := newEncoder(t, Options{ChunkSize: cs})
	_, l := enc.EncodeBytes(nil, raw)
	want := []uint32{l.Chunks[0].CRC32C, l.Chunks[1].CRC32C, l.Chunks[2].CRC32C}
	raw[cs+5] ^= 1
	_, err := enc.EncodeTo(context.Background(), io.Discard, bytes.NewReader(raw), int64(len(raw)), want)
	if err == nil || !bytesContains(err.Error(), "changed") {
		t.Fatalf("want ErrChanged, got %v", err)
	}
}

func TestEncodeShortFile(t *testing.T) {
	enc := newEncoder(t, Options{ChunkSize: 64 << 10})
	_, err := enc.EncodeTo(context.Background(), io.Discard, bytes.NewReader(make([]byte, 100)), 200_000, nil)
	if err == nil || !bytesContains(err.Error(), "shorter") {
		t.Fatalf("want a short-file error, got %v", err)
	}
}

func TestDecodeChunkRejectsCorruption(t *testing.T) {
	raw := testData(100_000, 4)
	enc := newEncoder(t, Options{Mode: Zstd, ChunkSize: 64 << 10})
	dec := newDecoder(t)
	obj, l := enc.EncodeBytes(nil, raw)
	// A flipped header bit can leave the output intact (a flag that changes
	// nothing); what must never happen is wrong bytes without an error.
	c := l.Chunks[0]
	detected := 0
	bad := bytes.Clone(obj[:c.StoredLen])
	for i := range bad {
		bad[i] ^= 0x55
		got, err := dec.DecodeChunk(nil, bad, l.Mode, c)
		bad[i] ^= 0x55
		if err == nil && !bytes.Equal(got, raw[:c.RawLen]) {
			t.Fatalf("flipping stored byte %d returned wrong bytes without an error", i)
		}
		if err != nil {
			detected++
		}
	}
	if detected < int(c.StoredLen)*9/10 {
		t.Fatalf("only %d of %d flipped bytes were detected", detected, c.StoredLen)
	}
}

func TestSeekTableRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, make([]byte, 17), bytes.Repeat([]byte{0xff}, 40)} {
		if _, err := parseSeekTable(b); err == nil {
			t.Fatalf("parseSeekTable(%x) accepted garbage", b)
		}
	}
	if _, err := parseSeekTableFooter(make([]byte, 9)); err != errNoSeekTable {
		t.Fatalf("want errNoSeekTable, got %v", err)
	}
}

// TestPlainZstdDecodes checks the promise that an object is a standard zstd
// stream, with the reference zstd CLI (installed by `make tools`).
func TestPlainZstdDecodes(t *testing.T) {
	zstdCLI, err := exec.LookPath("zstd")
	if err != nil {
		t.Fatal("the zstd command is missing: run `make tools` (installs Debian's zstd)")
	}
	const cs = 64 << 10
	raw := append(testData(5*cs+17, 5), testfixture.RandomBytes(2*cs, 6)...)
	enc := newEncoder(t, Options{Mode: Auto, ChunkSize: cs})
	obj, l := enc.EncodeBytes(nil, raw)
	if l.CompressedChunks() == 0 || l.CompressedChunks() == len(l.Chunks) {
		t.Fatalf("want a mix of raw and compressed chunks, got %d of %d compressed", l.CompressedChunks(), len(l.Chunks))
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "obj.zst")
	if err := os.WriteFile(in, obj, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zstdCLI, "-d", "-c", "-q", in).Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	if !bytes.Equal(out, raw) {
		t.Fatalf("zstd -d gave %d bytes that differ from the %d raw bytes", len(out), len(raw))
	}
}

func bytesContains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }
