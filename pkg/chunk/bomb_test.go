package chunk

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestDecodeChunkRefusesABombCheaply: a stored chunk that inflates to
// 256 MiB (many frames of zeros) while its layout records 1,000 bytes is
// refused, and decoding it allocates about the recorded size, not the
// inflated one (restore peaked at 2.1 GiB on a 1 GiB bomb before).
func TestDecodeChunkRefusesABombCheaply(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	frame := enc.EncodeAll(make([]byte, 32<<20), nil)
	enc.Close()
	var stored []byte
	for range 8 {
		stored = append(stored, frame...)
	}
	d, err := NewDecoder(2)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := Chunk{RawLen: 1000, StoredLen: int64(len(stored)), Compressed: true}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = d.DecodeChunk(make([]byte, 0, 1000), stored, Zstd, c)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v, want ErrCorrupt", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("decoding the bomb allocated %d MiB", got>>20)
	}
}

// TestDecodeChunkAppendsInPlace: chunks decoded one after the other into
// one buffer of the right size never reallocate it, whether a chunk is one
// frame or, from the fast coders, many.
func TestDecodeChunkAppendsInPlace(t *testing.T) {
	const cs = 1 << 20
	periodic := make([]byte, 3*cs)
	for i := range periodic {
		periodic[i] = byte(i % 13)
	}
	for _, tc := range []struct {
		name   string
		o      Options
		raw    []byte
		frames int // of the first chunk
	}{
		{"one frame a chunk", Options{Mode: Zstd, ChunkSize: cs, Level: 1, Workers: 1}, periodic, 1},
		{"frames of the fast coder", Options{Mode: Auto, ChunkSize: cs, Workers: 1}, fewSymbols(3*cs, 5), cs / fastFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEncoder(t, tc.o)
			d := newDecoder(t)
			obj, l := e.EncodeBytes(nil, tc.raw)
			c0 := l.Chunks[0]
			if sizes, _ := frameSizes(t, obj[c0.StoredOff:c0.StoredOff+c0.StoredLen]); len(sizes) != tc.frames {
				t.Fatalf("the first chunk is %d frames, want %d", len(sizes), tc.frames)
			}
			dst := make([]byte, 0, len(tc.raw))
			first := &dst[:1][0]
			var err error
			for _, c := range l.Chunks {
				dst, err = d.DecodeChunk(dst, obj[c.StoredOff:c.StoredOff+c.StoredLen], l.Mode, c)
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(dst, tc.raw) {
				t.Fatal("decoded bytes differ")
			}
			if &dst[0] != first {
				t.Fatal("the buffer was reallocated")
			}
		})
	}
}
