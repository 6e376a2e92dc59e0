package backup

import (
	"bytes"
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
	ctx       context.Context
	c         *transfer.Client
	u         transfer.Upload
	res       resumer
	partSize  int64 // a part is sent once it holds this much
	bufSize   int64 // PartBuffer: a part buffer's capacity
	limit     int64
	maxParts  int
	nchunks   int         // of the file (rec.Size, rec.ChunkSize)
	nextChunk chunk.Chunk // the chunk the next Write holds (note)
	wg        sync.WaitGroup

	progress        progress.Counter
	size, chunkSize int64

	// The part being filled: copied into cur, or made of kept pieces
	// (KeepWrite), never both.
	cur       []byte
	pieces    []piece
	curLen    int64  // the part's bytes, in cur or in pieces
	curCRC    uint32 // their CRC32C, when the client sends part checksums
	curChunks []manifest.Chunk
	curTail   bool  // the part holds the seek table: the object's last
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

// piece is a buffer a part is sent from without a copy: a chunk's buffer
// kept from the encoder (done returns it), or the copy of a small write
// that followed one (done nil). held is what it counts for in the
// writer's memory.
type piece struct {
	b    []byte
	done func()
	held int64
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
	// A part of kept pieces takes a copy of b as one more when it is short
	// of S3's minimum, or for the seek table (a few bytes a chunk, not a
	// part of its own); else it goes as it is.
	if len(w.pieces) > 0 && (w.curLen < transfer.MinPartSize || w.chunk == w.nchunks) {
		if err := w.reserve(int64(len(b))); err != nil {
			return 0, err
		}
		w.pieces = append(w.pieces, piece{b: bytes.Clone(b), held: int64(len(b))})
		return len(b), w.added(b)
	}
	if len(w.pieces) > 0 {
		if err := w.flush(); err != nil {
			return 0, err
		}
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
	return len(b), w.added(b)
}

// KeepWrite is Write of a chunk's buffer, which the part sends without a
// copy when the chunk fills at least half of it (it barely compressed: a
// large file's Data.db); the buffer then counts whole in the writer's
// memory until the part is stored, and done hands it back. A chunk that
// compressed well is copied, so that a part of many such is not many
// mostly empty buffers; so is one that follows copied chunks short of
// S3's minimum part, which grow their buffer to take it, as Write does.
func (w *partWriter) KeepWrite(b []byte, done func()) (bool, error) {
	if err := w.err(); err != nil {
		return false, err
	}
	if 2*len(b) < cap(b) || w.cur != nil && int64(len(w.cur)) < transfer.MinPartSize {
		_, err := w.Write(b)
		return false, err
	}
	size := int64(cap(b))
	// The part goes as it is when it was copied, or when the buffer does
	// not fit its memory; short of S3's minimum it grows past that.
	if w.cur != nil || len(w.pieces) > 0 && w.piecesHeld()+size > w.bufSize && w.curLen >= transfer.MinPartSize {
		if err := w.flush(); err != nil {
			return false, err
		}
	}
	if err := w.reserve(size); err != nil {
		return false, err
	}
	w.pieces = append(w.pieces, piece{b: b, done: done, held: size})
	return true, w.added(b)
}

// piecesHeld is the memory of the part's kept pieces.
func (w *partWriter) piecesHeld() int64 {
	var n int64
	for _, p := range w.pieces {
		n += p.held
	}
	return n
}

// added accounts for b, now in the part being filled, and sends the part
// once it holds partSize bytes.
func (w *partWriter) added(b []byte) error {
	w.curLen += int64(len(b))
	if w.c.PartChecksums() {
		// A chunk's stored bytes were summed as they were coded (note); the
		// seek table, a few bytes a chunk, is summed here, and so is a
		// chunk nobody noted.
		if w.chunk < w.nchunks && w.nextChunk.StoredLen == int64(len(b)) {
			w.curCRC = chunk.CombineCRC32C(w.curCRC, w.nextChunk.StoredCRC32C, int64(len(b)))
		} else {
			w.curCRC = chunk.UpdateCRC32C(w.curCRC, b)
		}
	}
	if w.chunk == w.nchunks {
		w.curTail = true
		return nil
	}
	w.curChunks = append(w.curChunks, manifest.Chunk{Stored: int64(len(b)), CRC32C: w.nextChunk.CRC32C})
	w.nextChunk = chunk.Chunk{} // told once, for one Write
	w.chunk++
	if w.curLen >= w.partSize {
		return w.flush()
	}
	return nil
}

// take returns an empty buffer of at least n bytes' capacity: a kept one,
// or a new one once the writer's buffers leave room for it (or none is in
// flight to wait for).
func (w *partWriter) take(n int64) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.room(n, max(n, w.bufSize), true)
}

// reserve counts n bytes more held, a piece's, once the writer's buffers
// leave room for them (or none is in flight to wait for).
func (w *partWriter) reserve(n int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err := w.room(n, n, false)
	return err
}

// room waits, with mu held, until size bytes more fit the writer's limit
// (or none is in flight to wait for) and counts them held; with alloc it
// returns a buffer of that size, or a kept one of at least n bytes.
func (w *partWriter) room(n, size int64, alloc bool) ([]byte, error) {
	for {
		if err := w.ctx.Err(); err != nil {
			return nil, err
		}
		if k := len(w.free); alloc && k > 0 && int64(cap(w.free[k-1])) >= n {
			buf := w.free[k-1]
			w.free = w.free[:k-1]
			return buf[:0], nil
		}
		if w.held+size <= w.limit || w.inFlight == 0 && len(w.free) == 0 {
			w.held += size
			w.peak = max(w.peak, w.held)
			if !alloc {
				return nil, nil
			}
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

// give takes back the memory of a stored part: its buffer, kept for the
// next parts, or its pieces, whose kept buffers go back to the encoder.
func (w *partWriter) give(buf []byte, pieces []piece) {
	w.mu.Lock()
	w.inFlight--
	switch {
	case buf == nil:
	case !w.draining && int64(cap(buf)) == w.bufSize && w.held <= w.limit:
		w.free = append(w.free, buf[:0]) // still held, for the next part
	default:
		w.unhold(int64(cap(buf))) // grown for one part, or draining
	}
	for _, p := range pieces {
		w.unhold(p.held)
	}
	w.freed.Broadcast()
	w.mu.Unlock()
	for _, p := range pieces {
		if p.done != nil {
			p.done()
		}
	}
}

// unhold gives up n bytes the writer held: room for its next parts, or,
// once it is draining, memory back to the budget.
func (w *partWriter) unhold(n int64) {
	w.held -= n
	if w.draining {
		w.limit -= n
		if w.budget != nil {
			w.budget.Give(n)
		}
	}
}

// note learns the chunk the next Write holds (chunk.Stream.Chunk).
func (w *partWriter) note(c chunk.Chunk) { w.nextChunk = c }

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
	if w.curLen == 0 {
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
	n, cur, pieces, chunks, tail := w.next, w.cur, w.pieces, w.curChunks, w.curTail
	body := transfer.Body{CRC32C: w.curCRC, Summed: w.c.PartChecksums()}
	if cur != nil {
		body.Pieces = [][]byte{cur}
	}
	for _, p := range pieces {
		body.Pieces = append(body.Pieces, p.b)
	}
	raw := w.rawOf(w.chunk-len(chunks), w.chunk)
	w.next++
	w.cur, w.pieces, w.curChunks, w.curLen, w.curCRC = nil, nil, nil, 0, 0
	w.wg.Go(func() {
		part, err := w.c.UploadPart(w.ctx, w.u, n, body)
		w.give(cur, pieces)
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
