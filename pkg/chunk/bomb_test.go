package chunk

import (
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
// one buffer of the right size never reallocate it.
func TestDecodeChunkAppendsInPlace(t *testing.T) {
	e, err := NewEncoder(Options{Mode: Zstd, ChunkSize: 1 << 16, Level: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d, err := NewDecoder(1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	raw := make([]byte, 3<<16)
	for i := range raw {
		raw[i] = byte(i % 13)
	}
	obj, l := e.EncodeBytes(nil, raw)
	dst := make([]byte, 0, len(raw))
	first := &dst[:1][0]
	for _, c := range l.Chunks {
		dst, err = d.DecodeChunk(dst, obj[c.StoredOff:c.StoredOff+c.StoredLen], Zstd, c)
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(dst) != string(raw) {
		t.Fatal("decoded bytes differ")
	}
	if &dst[0] != first {
		t.Fatal("the buffer was reallocated")
	}
}
