package backup

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/progress"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// resumer is the part of the node's catalog that remembers unfinished
// uploads of large files between runs; *catalog.Known is one.
type resumer interface {
	Partial(key string) *catalog.Partial
	PartialOf(fingerprint string) *catalog.Partial
	SetPartial(p *catalog.Partial)
	DropPartial(key string)
}

// largeFile is a file for streamLarge to store.
type largeFile struct {
	// key names the content (the second read of a file hashed first); ""
	// for a file read once: a new random key, or that of the file's
	// partial upload, found by fp.
	key  string
	fp   string
	r    io.ReaderAt
	size int64
	crcs []uint32  // of the hashing read; nil for a file read once
	hash hash.Hash // for a file read once: gets its bytes
}

// streamLarge compresses a large file into a multipart upload whose parts
// end at chunk boundaries, recording each stored part for the checkpoints
// (saved at the next checkpoint). A run killed mid-file leaves that record
// behind, and the next run continues the same upload from the chunk after
// its last part — after checking that the file's chunks still have the
// same CRCs and that the server still has those parts. It returns the
// object's layout and key, relative to the node's root.
//
// Its memory (streamShape): the encoder's from the start until the last
// chunk is encoded, when it goes to the next large file or to small ones;
// the parts' startParts buffers from the start and the rest as the budget
// has them, given back part by part as the last parts are stored. So the
// next large file's stream starts as soon as this one's encoder is done
// and the budget has its first parts, and takes over this one's part
// buffers as they come free: it waited for all of them before, a third of
// a second at each change of file through the bench's network proxy
// (bench/README.md, "Streams that overlap").
func (e *Engine) streamLarge(ctx context.Context, s *state, f largeFile) (*chunk.Layout, string, error) {
	workers, enc, parts := e.streamShape(f.size)
	first := min(parts, startParts*PartBuffer(e.up.PartSize(), int64(e.enc.Options().ChunkSize)))
	encoded, held, err := e.opts.Budget.AcquireHeld(ctx, enc, first)
	if err != nil {
		return nil, "", err
	}
	defer held.Release()
	defer encoded() // a second call is harmless
	res, _ := e.opts.Known.(resumer)
	cs := int64(e.enc.Options().ChunkSize)
	p, err := e.resume(ctx, res, f)
	if err != nil {
		return nil, "", err
	}
	if p == nil {
		key := f.key
		if key == "" {
			key = manifest.UniqueObjectKey(e.enc.StoredMode() == chunk.Zstd, cs)
		}
		u, err := e.client.StartMultipart(ctx, e.opts.Node.Root()+key)
		if err != nil {
			return nil, "", err
		}
		p = &catalog.Partial{Key: key, UploadID: u.ID, Size: f.size, ChunkSize: cs, Started: e.opts.Now().UTC()}
		if f.key == "" {
			p.Fingerprint = f.fp
		}
	}
	s.touch(p.Key)
	u := transfer.Upload{Key: e.opts.Node.Root() + p.Key, ID: p.UploadID}
	pw := newPartWriter(ctx, e.client, u, p, res, e.up.PartSize(), e.up.Concurrency(), first)
	pw.budget = held
	rest := parts - first
	if avail := e.opts.Budget.Available(); avail > 0 {
		rest = min(rest, avail-enc-first)
	}
	stopMore := pw.more(ctx, rest)
	defer stopMore()
	// Progress counts raw bytes once S3 has acknowledged the part that
	// holds them: the parts of an earlier run's at once.
	pw.progress = e.opts.Progress
	e.opts.Progress.Add(pw.rawOf(0, len(p.Chunks)))
	l, err := e.enc.EncodeFrom(ctx, pw, chunk.Stream{
		R: f.r, Size: f.size, Want: f.crcs, Workers: workers, Prior: priorChunks(p, f.size),
		Hash: f.hash, Chunk: pw.note,
	})
	encoded()
	if err == nil {
		err = pw.flush()
	}
	pw.drain()
	if werr := pw.wait(); err == nil {
		err = werr
	}
	if err != nil {
		if errors.Is(err, chunk.ErrChanged) {
			// The file is not what the parts hold: they are worth nothing.
			e.abandon(context.WithoutCancel(ctx), res, u, p.Key)
		}
		return nil, "", err
	}
	stopMore()
	held.Release()
	if err := e.client.CompleteMultipart(ctx, u, pw.parts()); err != nil {
		return nil, "", err
	}
	if res != nil {
		res.DropPartial(p.Key)
	}
	return l, p.Key, nil
}

// startParts is how many part buffers a stream starts with; it asks for
// the rest of its parts' memory beside, and gets it as it comes free.
const startParts = 2

// resume returns the partial upload of f to continue, or nil to start over
// (after abandoning a partial upload that no longer fits the file). For a
// file read once it reads the bytes the stored chunks hold, into f.hash,
// and checks their CRCs.
func (e *Engine) resume(ctx context.Context, res resumer, f largeFile) (*catalog.Partial, error) {
	if res == nil {
		return nil, nil
	}
	var p *catalog.Partial
	if f.key != "" {
		p = res.Partial(f.key)
	} else if f.fp != "" {
		p = res.PartialOf(f.fp)
	}
	if p == nil {
		return nil, nil
	}
	u := transfer.Upload{Key: e.opts.Node.Root() + p.Key, ID: p.UploadID}
	why := p.Fits(f.size, int64(e.enc.Options().ChunkSize), f.crcs)
	if why == "" {
		why = e.confirmParts(ctx, u, p)
	}
	if why == "" && f.hash != nil {
		crcs, err := hashChunks(ctx, f.r, min(int64(len(p.Chunks))*p.ChunkSize, f.size), p.ChunkSize, f.hash)
		if err != nil {
			return nil, fmt.Errorf("read what the partial upload of %s holds: %w", p.Key, err)
		}
		for i, c := range p.Chunks {
			if crcs[i] != c.CRC32C {
				why = fmt.Sprintf("chunk %d of the file changed since", i)
				f.hash.Reset()
				break
			}
		}
	}
	if why != "" {
		e.opts.Logger.Info("starting a large file's upload over", "key", p.Key, "why", why)
		e.abandon(ctx, res, u, p.Key)
		return nil, nil
	}
	e.opts.Logger.Info("continuing the upload of a large file where the last run stopped",
		"key", p.Key, "parts", len(p.Parts), "chunks", len(p.Chunks), "stored_bytes", p.Stored())
	return p, nil
}

// confirmParts checks that the server still has every recorded part as
// recorded; it returns why not, or "".
func (e *Engine) confirmParts(ctx context.Context, u transfer.Upload, p *catalog.Partial) string {
	have, err := e.client.ListParts(ctx, u)
	if err != nil {
		return fmt.Sprintf("its parts cannot be listed: %v", err)
	}
	for _, pt := range p.Parts {
		if got, ok := have[pt.Number]; !ok || got.ETag != pt.ETag || got.Size != pt.Size {
			return fmt.Sprintf("part %d is not on the server as recorded", pt.Number)
		}
	}
	return ""
}

func (e *Engine) abandon(ctx context.Context, res resumer, u transfer.Upload, key string) {
	if err := e.client.Abort(ctx, u); err != nil {
		e.opts.Logger.Warn("could not abort an abandoned upload; purge will", "key", key, "err", err)
	}
	if res != nil {
		res.DropPartial(key)
	}
}

// priorChunks is the layout of the chunks a partial upload holds.
func priorChunks(p *catalog.Partial, size int64) []chunk.Chunk {
	out := make([]chunk.Chunk, len(p.Chunks))
	for i, c := range p.Chunks {
		out[i] = chunk.Chunk{RawLen: min(p.ChunkSize, size-int64(i)*p.ChunkSize), StoredLen: c.Stored, Compressed: true, CRC32C: c.CRC32C}
	}
	return out
}

// partWriter cuts the encoder's stream into parts at chunk boundaries
// (each Write is one chunk, the last one the seek table) and uploads up to
// maxParts of them at once, within limit bytes of part buffers. The parts
// stored without a gap before them are recorded as the file's partial
// upload.
//
// Its memory is counted by the capacity of the buffers it holds: the one
// being filled, those in flight and those kept for the next parts. Its
// limit grows as the budget grants it more (more), and once it drains
// (the last part sent) each stored part's buffer goes back to the budget. A part
// holds the chunks that fit in a buffer of PartBuffer bytes, so a chunk
// that does not compress is a part of its own, not a part and a half (a
// part once held a chunk more than its size, and was counted so): the same
// memory carries more parts at once. Before one more buffer would pass
// limit, the writer waits for a part to be stored; with none in flight it
// goes on, so a stream always moves.
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

	// held, when set, is the budget's bytes behind limit: once draining
	// (the last part sent), each stored part's buffer goes back to it.
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
