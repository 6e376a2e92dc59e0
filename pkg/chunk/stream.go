package chunk

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ErrChanged means a file's bytes differ between two reads of it.
var ErrChanged = errors.New("file changed while it was being read")

type encoded struct {
	buf    *[]byte
	raw    *[]byte // when the writer hashes
	rawLen int64
	coded
	err error
}

// StreamMemoryN bounds the chunk buffers one EncodeFrom with workers
// chunks in flight holds: a raw and a stored buffer for each chunk being
// compressed and the one being written. A chunk more read ahead bought no
// speed when compressing is the bottleneck (a queue of workers+2 chunks
// made the bench's 1.4 GiB file no faster than workers+1, on 2 CPUs), and
// is memory a stream's parts in flight lack when the network is.
func (e *Encoder) StreamMemoryN(workers int) int64 {
	return e.StreamMemory(workers, -1)
}

// StreamMemory is StreamMemoryN for a file of size bytes (-1: any): no
// more chunks are in flight than the file has.
func (e *Encoder) StreamMemory(workers int, size int64) int64 {
	n := int64(max(workers, 1) + 1)
	if size >= 0 {
		n = min(n, int64(max(NumChunks(size, int64(e.opts.ChunkSize)), 1)))
	}
	return 2 * n * int64(e.opts.ChunkSize)
}

// Stream is one object for EncodeFrom to write.
type Stream struct {
	R    io.ReaderAt
	Size int64
	// Want, when not nil, holds the CRC32C of each chunk from an earlier
	// read, and a difference fails with ErrChanged rather than storing
	// bytes that do not match the checksum.
	Want []uint32
	// Workers is how many chunks are compressed at once (at least one).
	Workers int
	// Prior are the chunks stored already, of an upload cut short (none
	// for a new object).
	Prior []Chunk
	// Hash, when set, is written the raw bytes of every chunk after Prior,
	// in order: a content hash of the same read that compresses the file.
	// The caller hashes Prior's bytes first.
	Hash hash.Hash
	// Chunk, when set, is told each chunk after Prior right before its
	// Write, so that w knows what the bytes it is given hold.
	Chunk func(Chunk)
}

// EncodeFrom reads s.Size bytes of s.R, chunk by chunk, compresses up to
// s.Workers chunks at once and writes the stored object to w in order.
// Memory is StreamMemory(s.Workers, s.Size), never more than
// StreamMemoryN(s.Workers) whatever the file size, so that a caller with
// little memory can still stream a large file: in smaller steps, not all
// at once.
//
// It continues an object of which the chunks s.Prior are stored already:
// it writes to w only the chunks after them and the seek table, which
// covers all of them. Each chunk is one Write, and the seek table one last
// Write, so that w can cut parts at chunk boundaries. The Layout returned
// describes the whole object.
func (e *Encoder) EncodeFrom(ctx context.Context, w io.Writer, s Stream) (*Layout, error) {
	l := e.newLayout(s.Size)
	n := NumChunks(s.Size, int64(e.opts.ChunkSize))
	if s.Want != nil && len(s.Want) != n {
		return nil, fmt.Errorf("chunk: %d checksums for %d chunks", len(s.Want), n)
	}
	if len(s.Prior) > n {
		return nil, fmt.Errorf("chunk: %d chunks stored of an object of %d", len(s.Prior), n)
	}
	var stored int64
	for i, c := range s.Prior {
		if s.Want != nil && s.Want[i] != c.CRC32C {
			return nil, fmt.Errorf("chunk %d: %w", i, ErrChanged)
		}
		rawLen := min(int64(e.opts.ChunkSize), s.Size-int64(i)*int64(e.opts.ChunkSize))
		l.add(rawLen, c.StoredLen, coded{compressed: c.Compressed, rawCRC: c.CRC32C, storedCRC: c.StoredCRC32C})
		stored += c.StoredLen
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan chan encoded, max(s.Workers-1, 0))
	go e.dispatch(ctx, queue, s.R, s.Size, len(s.Prior), n, s.Hash != nil)
	defer func() { // stop dispatching, then drain so every buffer returns to the pool
		cancel()
		for ch := range queue {
			e.release(<-ch)
		}
	}()
	for i := len(s.Prior); i < n; i++ {
		ch, ok := <-queue
		if !ok {
			// dispatch stopped early: ctx ended. (A receive from the nil
			// channel a closed queue yields would block for ever.)
			return nil, ctx.Err()
		}
		res := <-ch
		if res.err != nil {
			return nil, res.err
		}
		if s.Want != nil && s.Want[i] != res.rawCRC {
			e.release(res)
			return nil, fmt.Errorf("chunk %d: %w", i, ErrChanged)
		}
		if s.Hash != nil {
			s.Hash.Write(*res.raw)
		}
		l.add(res.rawLen, int64(len(*res.buf)), res.coded)
		if s.Chunk != nil {
			s.Chunk(l.Chunks[len(l.Chunks)-1])
		}
		stored += int64(len(*res.buf))
		if err := e.write(w, &res); err != nil {
			return nil, err
		}
	}
	tail := e.finish(nil, l)
	if _, err := w.Write(tail); err != nil {
		return nil, err
	}
	l.StoredSize = stored + int64(len(tail))
	return l, nil
}

// A Keeper is a writer that may keep the buffer of a chunk rather than
// copy it: a chunk that barely compresses fills most of its buffer, and
// copying it was a pass over memory neither side had in cache, 0.27 CPU-s
// per GiB of a large Data.db (7% of its backup's CPU). KeepWrite writes b
// and tells whether it kept it; a kept b stays untouched until the Keeper
// calls done, which returns it to the Encoder.
type Keeper interface {
	KeepWrite(b []byte, done func()) (kept bool, err error)
}

// write writes res's stored chunk to w, handing its buffer over to a
// Keeper, and returns res's buffers to the pool (those w did not keep).
func (e *Encoder) write(w io.Writer, res *encoded) error {
	var err error
	if k, ok := w.(Keeper); ok {
		buf := res.buf
		var kept bool
		kept, err = k.KeepWrite(*buf, func() { e.bufs.Put(buf) })
		if kept {
			res.buf = nil
		}
	} else {
		_, err = w.Write(*res.buf)
	}
	e.release(*res)
	return err
}

// release returns res's buffers to the pool.
func (e *Encoder) release(res encoded) {
	for _, b := range []*[]byte{res.buf, res.raw} {
		if b != nil {
			e.bufs.Put(b)
		}
	}
}

// dispatch starts one goroutine per chunk, at most cap(queue)+1 ahead of the
// writer (workers in all, and the one it writes), and closes queue when
// every chunk is started or ctx ends.
func (e *Encoder) dispatch(ctx context.Context, queue chan<- chan encoded, r io.ReaderAt, size int64, from, n int, keepRaw bool) {
	defer close(queue)
	for i := from; i < n; i++ {
		ch := make(chan encoded, 1)
		select {
		case queue <- ch:
		case <-ctx.Done():
			return
		}
		off := int64(i) * int64(e.opts.ChunkSize)
		go func() { ch <- e.readAndEncode(r, off, min(int64(e.opts.ChunkSize), size-off), keepRaw) }()
	}
}

// readAndEncode reads and compresses one chunk; keepRaw hands its raw
// bytes on too, for the writer to hash in order (StreamMemoryN counts a
// raw buffer per chunk in flight either way).
func (e *Encoder) readAndEncode(r io.ReaderAt, off, n int64, keepRaw bool) encoded {
	raw := e.bufs.Get().(*[]byte)
	if !keepRaw {
		defer e.bufs.Put(raw)
	}
	*raw = (*raw)[:n]
	// io.ReaderAt may return io.EOF with a full read at the end of the file.
	if got, err := r.ReadAt(*raw, off); err != nil && !(errors.Is(err, io.EOF) && got == len(*raw)) {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("file is shorter than %d bytes (offset %d): %w", off+n, off, io.ErrUnexpectedEOF)
		}
		if keepRaw {
			e.bufs.Put(raw)
		}
		return encoded{err: err}
	}
	out := e.bufs.Get().(*[]byte)
	var c coded
	*out, c = e.encodeChunk((*out)[:0], *raw)
	res := encoded{buf: out, rawLen: n, coded: c}
	if keepRaw {
		res.raw = raw
	}
	return res
}
