package backup

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
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
