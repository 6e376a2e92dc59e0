package backup

import (
	"context"
	"sync"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/progress"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// partWriter cuts the encoder's stream into parts at chunk boundaries
// (each Write is one chunk, the last one the seek table) and uploads up to
// maxParts of them at once, within limit bytes of part buffers. The parts
// stored without a gap before them are recorded as the file's partial
// upload.
//
// Its memory is counted by the capacity of the buffers it holds: the one
// being filled, those in flight and those kept for the next parts. Its
// limit grows as the budget grants it more (more), and once it drains (the
// last part sent) each stored part's buffer goes back to the budget. A
// part holds the chunks that fit in a buffer of PartBuffer bytes, so a
// chunk that does not compress is a part of its own, not a part and a half
// (a part once held a chunk more than its size, and was counted so): the
// same memory carries more parts at once. Before one more buffer would
// pass limit, the writer waits for a part to be stored; with none in
// flight it goes on, so a stream always moves.
type partWriter struct {
	ctx      context.Context
	c        *transfer.Client
	u        transfer.Upload
	res      resumer
	partSize int64 // a part is sent once it holds this much
	bufSize  int64 // PartBuffer: a part buffer's capacity
	limit    int64
	maxParts int
	nchunks  int    // of the file (rec.Size, rec.ChunkSize)
	nextCRC  uint32 // of the chunk the next Write holds (note)
	wg       sync.WaitGroup

	progress        progress.Counter
	size, chunkSize int64

	cur       []byte
	curChunks []manifest.Chunk
	curTail   bool  // cur holds the seek table: the object's last part
	next      int32 // the number of the part being filled
	chunk     int   // the index of the next chunk written

	// Buffers: guarded by mu, waited for on freed.
	freed    *sync.Cond
	held     int64    // the capacity of every buffer the writer holds
	peak     int64    // the most it held
	inFlight int      // parts being uploaded
	free     [][]byte // buffers of stored parts, for the next parts: a
	// buffer grown chunk by chunk to a part's size cost a sixth of a large
	// file's CPU in copies and page faults.

	// budget, when set, holds the bytes behind limit: more grows it, and
	// once draining (the last part sent) each stored part's buffer goes
	// back to it.
	budget   *budget.Held
	draining bool

	mu     sync.Mutex
	rec    *catalog.Partial // parts stored without a gap, and their chunks
	done   map[int32]donePart
	failed error
}

type donePart struct {
	part   transfer.Part
	chunks []manifest.Chunk
	tail   bool // holds the seek table too: never recorded, completion follows
}

// newPartWriter writes the parts of p's upload u of partSize bytes or a
// chunk each, maxParts at once, within limit bytes of buffers.
func newPartWriter(ctx context.Context, c *transfer.Client, u transfer.Upload, p *catalog.Partial, res resumer, partSize int64, maxParts int, limit int64) *partWriter {
	w := &partWriter{
		ctx: ctx, c: c, u: u, res: res, partSize: partSize, bufSize: PartBuffer(partSize, p.ChunkSize),
		limit: limit, maxParts: max(maxParts, 1),
		size: p.Size, chunkSize: p.ChunkSize, nchunks: chunk.NumChunks(p.Size, p.ChunkSize),
		next: int32(len(p.Parts) + 1), chunk: len(p.Chunks),
		rec: p, done: map[int32]donePart{},
	}
	w.freed = sync.NewCond(&w.mu)
	return w
}

func (w *partWriter) Write(b []byte) (int, error) {
	if err := w.err(); err != nil {
		return 0, err
	}
	if w.cur != nil && len(w.cur)+len(b) > cap(w.cur) {
		// The chunk does not fit: the part goes as it is, or, short of
		// S3's minimum for every part but the last, grows past its buffer.
		if int64(len(w.cur)) >= transfer.MinPartSize {
			if err := w.flush(); err != nil {
				return 0, err
			}
		} else if err := w.grow(len(w.cur) + len(b)); err != nil {
			return 0, err
		}
	}
	if w.cur == nil {
		buf, err := w.take(int64(len(b)))
		if err != nil {
			return 0, err
		}
		w.cur = buf
	}
	w.cur = append(w.cur, b...)
	if w.chunk == w.nchunks {
		w.curTail = true
	} else {
		w.curChunks = append(w.curChunks, manifest.Chunk{Stored: int64(len(b)), CRC32C: w.nextCRC})
		w.chunk++
		if int64(len(w.cur)) >= w.partSize {
			return len(b), w.flush()
		}
	}
	return len(b), nil
}

// take returns an empty buffer of at least n bytes' capacity: a kept one,
// or a new one once the writer's buffers leave room for it (or none is in
// flight to wait for).
func (w *partWriter) take(n int64) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	size := max(n, w.bufSize)
	for {
		if err := w.ctx.Err(); err != nil {
			return nil, err
		}
		if k := len(w.free); k > 0 && int64(cap(w.free[k-1])) >= n {
			buf := w.free[k-1]
			w.free = w.free[:k-1]
			return buf[:0], nil
		}
		if w.held+size <= w.limit || w.inFlight == 0 && len(w.free) == 0 {
			w.held += size
			w.peak = max(w.peak, w.held)
			return make([]byte, 0, size), nil
		}
		if k := len(w.free); k > 0 {
			w.held -= int64(cap(w.free[k-1])) // too small, or in the way
			w.free = w.free[:k-1]
			continue
		}
		w.freed.Wait()
	}
}

// grow moves the part being filled into a buffer of n bytes' capacity.
func (w *partWriter) grow(n int) error {
	buf, err := w.take(int64(n))
	if err != nil {
		return err
	}
	buf = append(buf, w.cur...)
	w.mu.Lock()
	w.held -= int64(cap(w.cur))
	w.mu.Unlock()
	w.cur = buf
	return nil
}

// more asks the budget for n bytes more of part buffers beside the writer,
// and raises its limit once it has them; the function it returns stops
// asking and waits for the asking to end, so that nothing is taken after
// the writer's memory is given back.
func (w *partWriter) more(ctx context.Context, n int64) (stop func()) {
	if n <= 0 || w.budget == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if w.budget.Grow(ctx, n) == nil {
			w.grant(n)
		}
	}()
	return sync.OnceFunc(func() {
		cancel()
		<-done
	})
}

// grant raises the writer's limit by n bytes the budget gave it, or gives
// them straight back once it is draining.
func (w *partWriter) grant(n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.draining {
		w.budget.Give(n)
		return
	}
	w.limit += n
	w.freed.Broadcast()
}

// drain gives back to the budget what the writer will not use again, now
// that its last part is sent: its kept buffers and the room it never
// filled, and then each part's buffer once it is stored.
func (w *partWriter) drain() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.draining = true
	for _, buf := range w.free {
		w.held -= int64(cap(buf))
	}
	w.free = nil
	if w.budget != nil {
		w.budget.Give(w.limit - w.held)
	}
	w.limit = w.held
}

// give takes back the buffer of a stored part.
func (w *partWriter) give(buf []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight--
	if w.draining {
		w.held -= int64(cap(buf))
		w.limit -= int64(cap(buf))
		if w.budget != nil {
			w.budget.Give(int64(cap(buf)))
		}
	} else if int64(cap(buf)) == w.bufSize && w.held <= w.limit {
		w.free = append(w.free, buf[:0])
	} else {
		w.held -= int64(cap(buf)) // grown for one part
	}
	w.freed.Broadcast()
}

// note learns the chunk the next Write holds (chunk.Stream.Chunk).
func (w *partWriter) note(c chunk.Chunk) { w.nextCRC = c.CRC32C }

// rawOf is the raw bytes of chunks [from, to) of the file.
func (w *partWriter) rawOf(from, to int) int64 {
	if w.chunkSize <= 0 {
		return 0
	}
	var n int64
	for i := from; i < to; i++ {
		n += min(w.chunkSize, w.size-int64(i)*w.chunkSize)
	}
	return n
}

// flush uploads the part being filled, once fewer than maxParts are in
// flight.
func (w *partWriter) flush() error {
	if len(w.cur) == 0 {
		return nil
	}
	w.mu.Lock()
	for w.inFlight >= w.maxParts && w.ctx.Err() == nil {
		w.freed.Wait()
	}
	err := w.ctx.Err()
	if err == nil {
		w.inFlight++
	}
	w.mu.Unlock()
	if err != nil {
		return err
	}
	n, body, chunks, tail := w.next, w.cur, w.curChunks, w.curTail
	raw := w.rawOf(w.chunk-len(chunks), w.chunk)
	w.next++
	w.cur, w.curChunks = nil, nil
	w.wg.Go(func() {
		part, err := w.c.UploadPart(w.ctx, w.u, n, body)
		w.give(body)
		if err == nil && w.progress != nil {
			w.progress.Add(raw)
		}
		w.stored(n, donePart{part, chunks, tail}, err)
	})
	return nil
}

// stored notes an uploaded part and records the parts now without a gap.
func (w *partWriter) stored(n int32, d donePart, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if w.failed == nil {
			w.failed = err
		}
		return
	}
	w.done[n] = d
	advanced := false
	for {
		d, ok := w.done[int32(len(w.rec.Parts)+1)]
		if !ok || d.tail {
			break
		}
		delete(w.done, d.part.Number)
		w.rec.Parts = append(w.rec.Parts, d.part)
		w.rec.Chunks = append(w.rec.Chunks, d.chunks...)
		advanced = true
	}
	if advanced && w.res != nil {
		w.res.SetPartial(w.rec)
	}
}

func (w *partWriter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed
}

// wait waits for the parts in flight and returns the first failure.
func (w *partWriter) wait() error {
	w.wg.Wait()
	return w.err()
}

// parts are every part, in order, once all are stored.
func (w *partWriter) parts() []transfer.Part {
	w.mu.Lock()
	defer w.mu.Unlock()
	parts := w.rec.Parts
	for n := int32(len(parts) + 1); ; n++ {
		d, ok := w.done[n]
		if !ok {
			return parts
		}
		parts = append(parts, d.part)
	}
}
