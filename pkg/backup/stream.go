package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/progress"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// resumer is the part of the node's catalog that remembers unfinished
// uploads of large files between runs; *catalog.Index is one.
type resumer interface {
	Partial(key string) *catalog.Partial
	SetPartial(p *catalog.Partial)
	DropPartial(key string)
}

// streamLarge compresses a large file into a multipart upload whose parts
// end at chunk boundaries, recording each stored part for the checkpoints
// (saved at the next checkpoint). A run killed mid-file leaves that record
// behind, and the next run continues the same upload from the chunk after
// its last part — after checking that the file's chunks still have the
// same CRCs and that the server still has those parts. key is relative to
// the node's root.
func (e *Engine) streamLarge(ctx context.Context, s *state, key string, r io.ReaderAt, size int64, crcs []uint32, workers int) (*chunk.Layout, error) {
	res, _ := e.opts.Known.(resumer)
	s.touch(key)
	p := e.resume(ctx, res, key, size, crcs)
	full := e.opts.Node.Root() + key
	if p == nil {
		u, err := e.client.StartMultipart(ctx, full)
		if err != nil {
			return nil, err
		}
		p = &catalog.Partial{Key: key, UploadID: u.ID, Size: size, ChunkSize: int64(e.enc.Options().ChunkSize), Started: e.opts.Now().UTC()}
	}
	u := transfer.Upload{Key: full, ID: p.UploadID}
	pw := newPartWriter(ctx, e.client, u, p, res, e.up.PartSize(), e.up.Concurrency(), crcs)
	// Progress counts raw bytes once S3 has acknowledged the part that
	// holds them: the parts of an earlier run's at once.
	pw.progress, pw.size, pw.chunkSize = e.opts.Progress, size, p.ChunkSize
	e.opts.Progress.Add(pw.rawOf(0, len(p.Chunks)))
	l, err := e.enc.EncodeFrom(ctx, pw, r, size, crcs, workers, priorChunks(p, size))
	if err == nil {
		err = pw.flush()
	}
	if werr := pw.wait(); err == nil {
		err = werr
	}
	if err != nil {
		if errors.Is(err, chunk.ErrChanged) {
			// The file is not what the parts hold: they are worth nothing.
			e.abandon(context.WithoutCancel(ctx), res, u, key)
		}
		return nil, err
	}
	if err := e.client.CompleteMultipart(ctx, u, pw.parts()); err != nil {
		return nil, err
	}
	if res != nil {
		res.DropPartial(key)
	}
	return l, nil
}

// resume returns the partial upload of key to continue, or nil to start
// over (after abandoning a partial upload that no longer fits the file).
func (e *Engine) resume(ctx context.Context, res resumer, key string, size int64, crcs []uint32) *catalog.Partial {
	if res == nil {
		return nil
	}
	p := res.Partial(key)
	if p == nil {
		return nil
	}
	u := transfer.Upload{Key: e.opts.Node.Root() + key, ID: p.UploadID}
	why := p.Fits(size, int64(e.enc.Options().ChunkSize), crcs)
	if why == "" {
		why = e.confirmParts(ctx, u, p)
	}
	if why != "" {
		e.opts.Logger.Info("starting a large file's upload over", "key", key, "why", why)
		e.abandon(ctx, res, u, key)
		return nil
	}
	e.opts.Logger.Info("continuing the upload of a large file where the last run stopped",
		"key", key, "parts", len(p.Parts), "chunks", len(p.Chunks), "stored_bytes", p.Stored())
	return p
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
// concurrency of them at once. The parts stored without a gap before them
// are recorded as the file's partial upload.
type partWriter struct {
	ctx      context.Context
	c        *transfer.Client
	u        transfer.Upload
	res      resumer
	partSize int64
	crcs     []uint32
	slots    chan struct{}
	wg       sync.WaitGroup

	progress        progress.Counter
	size, chunkSize int64

	cur       []byte
	curChunks []manifest.Chunk
	curTail   bool  // cur holds the seek table: the object's last part
	next      int32 // the number of the part being filled
	chunk     int   // the index of the next chunk written

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

func newPartWriter(ctx context.Context, c *transfer.Client, u transfer.Upload, p *catalog.Partial, res resumer, partSize int64, concurrency int, crcs []uint32) *partWriter {
	return &partWriter{
		ctx: ctx, c: c, u: u, res: res, partSize: partSize, crcs: crcs,
		slots: make(chan struct{}, max(concurrency, 1)),
		next:  int32(len(p.Parts) + 1), chunk: len(p.Chunks),
		rec: p, done: map[int32]donePart{},
	}
}

func (w *partWriter) Write(b []byte) (int, error) {
	if err := w.err(); err != nil {
		return 0, err
	}
	w.cur = append(w.cur, b...)
	if w.chunk == len(w.crcs) {
		w.curTail = true
	} else {
		w.curChunks = append(w.curChunks, manifest.Chunk{Stored: int64(len(b)), CRC32C: w.crcs[w.chunk]})
		w.chunk++
		if int64(len(w.cur)) >= w.partSize {
			return len(b), w.flush()
		}
	}
	return len(b), nil
}

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

// flush uploads the part being filled, waiting for a free slot.
func (w *partWriter) flush() error {
	if len(w.cur) == 0 {
		return nil
	}
	select {
	case w.slots <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	n, body, chunks, tail := w.next, w.cur, w.curChunks, w.curTail
	raw := w.rawOf(w.chunk-len(chunks), w.chunk)
	w.next++
	w.cur, w.curChunks = nil, nil
	w.wg.Go(func() {
		defer func() { <-w.slots }()
		part, err := w.c.UploadPart(w.ctx, w.u, n, body)
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
