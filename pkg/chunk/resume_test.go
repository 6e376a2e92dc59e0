package chunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"testing"
	"time"
)

// TestEncodeFromContinuesAnObject: the stored chunks of a cut-short upload
// plus what EncodeFrom writes after them are byte for byte the object a
// single EncodeTo makes, seek table included; a prior chunk whose CRC does
// not match the file now is ErrChanged.
func TestEncodeFromContinuesAnObject(t *testing.T) {
	e, err := NewEncoder(Options{Mode: Auto, ChunkSize: 64 << 10, Level: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	raw := make([]byte, 5*64<<10+777)
	for i := range raw {
		raw[i] = byte(i * i >> 5)
	}
	var whole bytes.Buffer
	full, err := e.EncodeTo(context.Background(), &whole, bytes.NewReader(raw), int64(len(raw)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for from := 0; from <= len(full.Chunks); from++ {
		prior := full.Chunks[:from]
		var rest bytes.Buffer
		l, err := e.EncodeFrom(context.Background(), &rest, Stream{R: bytes.NewReader(raw), Size: int64(len(raw)), Workers: 2, Prior: prior})
		if err != nil {
			t.Fatalf("from chunk %d: %v", from, err)
		}
		var start int64
		if from > 0 {
			start = prior[from-1].StoredOff + prior[from-1].StoredLen
		}
		got := append(append([]byte(nil), whole.Bytes()[:start]...), rest.Bytes()...)
		if !bytes.Equal(got, whole.Bytes()) {
			t.Fatalf("from chunk %d: the continued object differs", from)
		}
		if l.StoredSize != full.StoredSize || len(l.Chunks) != len(full.Chunks) {
			t.Fatalf("from chunk %d: layout %d bytes / %d chunks, want %d / %d", from, l.StoredSize, len(l.Chunks), full.StoredSize, len(full.Chunks))
		}
	}
	bad := append([]Chunk(nil), full.Chunks[:2]...)
	bad[1].CRC32C++
	want := make([]uint32, len(full.Chunks))
	for i, c := range full.Chunks {
		want[i] = c.CRC32C
	}
	if _, err := e.EncodeFrom(context.Background(), &bytes.Buffer{}, Stream{R: bytes.NewReader(raw), Size: int64(len(raw)), Want: want, Workers: 2, Prior: bad}); !errors.Is(err, ErrChanged) {
		t.Fatalf("a prior chunk of other bytes: %v, want ErrChanged", err)
	}
}

// TestEncodeFromStopsWhenItsContextEnds: a context cancelled while chunks
// are being dispatched ends the encoding with the context's error. It used
// to hang for ever, receiving from the nil channel the closed queue yields.
func TestEncodeFromStopsWhenItsContextEnds(t *testing.T) {
	e, err := NewEncoder(Options{Mode: Zstd, ChunkSize: 4 << 10, Level: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	raw := make([]byte, 4<<20) // a thousand chunks: the dispatcher is still at work
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		w := &cancelAfterWrites{n: 3, cancel: cancel}
		done := make(chan error, 1)
		go func() {
			_, err := e.EncodeFrom(ctx, w, Stream{R: bytes.NewReader(raw), Size: int64(len(raw)), Workers: 1})
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("EncodeFrom after its context ended: %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("EncodeFrom hangs after its context ended")
		}
		cancel()
	}
}

// cancelAfterWrites cancels a context at its n-th write.
type cancelAfterWrites struct {
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfterWrites) Write(p []byte) (int, error) {
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return len(p), nil
}

// TestEncodeFromHashesInOrder: a Stream's Hash gets the file's bytes after
// Prior in order, whatever order the workers finish in, and Chunk is told
// each new chunk, as the layout has it, before its bytes are written.
func TestEncodeFromHashesInOrder(t *testing.T) {
	e, err := NewEncoder(Options{Mode: Auto, ChunkSize: 64 << 10, Level: 1, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	raw := testData(9*64<<10+123, 7)
	for _, from := range []int{0, 3} {
		h := sha256.New()
		h.Write(raw[:from*64<<10]) // the caller hashes what Prior holds
		var prior []Chunk
		if from > 0 {
			full, err := e.EncodeTo(context.Background(), io.Discard, bytes.NewReader(raw), int64(len(raw)), nil)
			if err != nil {
				t.Fatal(err)
			}
			prior = full.Chunks[:from]
		}
		var told []Chunk
		var out countingWriter
		l, err := e.EncodeFrom(context.Background(), &out, Stream{
			R: bytes.NewReader(raw), Size: int64(len(raw)), Workers: 4, Prior: prior, Hash: h,
			Chunk: func(c Chunk) {
				if out.writes != len(told) {
					t.Errorf("Chunk told after %d writes, want before write %d", out.writes, len(told))
				}
				told = append(told, c)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := sha256.Sum256(raw); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Errorf("from chunk %d: the hash is not the file's SHA-256", from)
		}
		if !slices.Equal(told, l.Chunks[from:]) {
			t.Errorf("from chunk %d: told %d chunks, not the layout's %d after the prior ones", from, len(told), len(l.Chunks)-from)
		}
	}
}

type countingWriter struct{ writes int }

func (w *countingWriter) Write(b []byte) (int, error) { w.writes++; return len(b), nil }
