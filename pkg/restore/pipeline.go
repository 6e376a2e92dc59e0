package restore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// maxWorkers bounds the GETs of one file in flight. Twice the CPUs: a worker
// spends much of its time waiting on the network, and the decoder's own
// concurrency keeps the decoding itself to the CPUs.
func maxWorkers() int { return 2 * runtime.GOMAXPROCS(0) }

// piece is one fetched group on its way to the hasher.
type piece struct {
	raw     *[]byte
	err     error
	release func() // returns the group's bytes to the budget
}

// transfer fetches the groups of f in parallel, decodes them, writes each at
// its raw offset into w and feeds them, in file order, to the SHA-256 that
// it checks at the end. Every buffer is taken from the budget before its GET
// and given back once hashed; the file is never read back.
//
// With checkSize, the object's size is checked against the manifest (a
// HEAD) beside the first GETs rather than a round trip before them, and
// before anything else is believed: a wrong size is the failure reported,
// whatever the GETs of a chunk index that does not describe the object
// ran into meanwhile, and it stops them. Nothing they wrote is kept: the
// file is a temporary one until every file is verified.
func (r *restorer) transfer(ctx context.Context, f manifest.File, key string, chunks []chunk.Chunk, groups []group, w io.WriterAt, checkSize bool) error {
	var sized chan error
	if checkSize {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		sized = make(chan error, 1)
		head := ctx
		go func() {
			err := r.checkSize(head, f, key)
			if err != nil {
				cancel(err)
			}
			sized <- err
		}()
	}
	err := r.transferChecked(ctx, f, key, chunks, groups, w)
	if sized != nil {
		if serr := <-sized; serr != nil {
			return serr
		}
	}
	return err
}

// transferChecked is transfer once the object's size is checked, or while
// it is.
func (r *restorer) transferChecked(ctx context.Context, f manifest.File, key string, chunks []chunk.Chunk, groups []group, w io.WriterAt) error {
	workers := min(len(groups), maxWorkers())
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers + 1) // the workers and the hasher
	// The queue holds the groups in file order, each as the channel its
	// worker answers on: its length is the reorder window.
	queue := make(chan chan piece, 2*workers)
	h := sha256.New()
	var n int64
	g.Go(func() error {
		var err error
		n, err = r.hashInOrder(queue, h)
		return err
	})
	err := r.dispatch(gctx, g, queue, f, key, chunks, groups, w)
	close(queue)
	if werr := g.Wait(); werr != nil {
		return werr // the cause; dispatch then only saw the cancellation
	}
	if err != nil {
		return err
	}
	return r.verify(f, h, n, key)
}

// groupLimit keeps grouped chunks to a quarter of a small budget, so that
// grouping never makes a restore fetch one group at a time.
func (r *restorer) groupLimit() int64 {
	if s := r.budget.Size(); s > 0 {
		return min(maxGroupMemory, s/4)
	}
	return maxGroupMemory
}

// dispatch takes each group's memory from the budget, in file order, and
// starts its worker. Taking the budget in order is what makes sharing it
// safe: the group the hasher waits for always holds its bytes already, so
// the groups behind it can never starve it.
func (r *restorer) dispatch(ctx context.Context, g *errgroup.Group, queue chan<- chan piece,
	f manifest.File, key string, chunks []chunk.Chunk, groups []group, w io.WriterAt) error {
	for _, grp := range groups {
		// A group decoded into a buffer of its own gives its stored bytes
		// back once decoded, not once hashed: decoding takes milliseconds,
		// the GET and the wait for the hasher much longer, so the budget
		// then holds more GETs in flight.
		var stored int64
		if grp.decodedApart(f) {
			stored = grp.fetchLen(f)
		}
		decoded, release, err := r.budget.AcquireSplit(ctx, stored, grp.memory(f)-stored)
		if err != nil {
			return err
		}
		ch := make(chan piece, 1) // the worker never waits for the hasher
		select {
		case queue <- ch:
		case <-ctx.Done():
			decoded()
			release()
			return ctx.Err()
		}
		g.Go(func() error {
			p := r.fetchGroup(ctx, f, key, chunks, grp, w, decoded)
			p.release = release
			ch <- p
			return p.err
		})
	}
	return nil
}

// fetchGroup gets, decodes and writes one group; decoded is called once its
// stored bytes are given back (decoded, or failed).
func (r *restorer) fetchGroup(ctx context.Context, f manifest.File, key string, chunks []chunk.Chunk, g group, w io.WriterAt, decoded func()) piece {
	defer decoded() // a second call is harmless
	stored := r.bufs.get(g.fetchLen(f))
	raw := stored
	if g.decodedApart(f) {
		raw = r.bufs.get(g.rawLen)
	}
	// A group whose bytes fail their check is fetched again before it is
	// called corrupt.
	err := readChecked(ctx, func() error {
		var err error
		if g.whole {
			err = get(ctx, r.c, key, g.storedOff, *stored, true)
		} else {
			err = getSpan(ctx, r.c, key, g.storedOff, *stored, r.pieces())
		}
		if err != nil || f.Compression != chunk.Zstd {
			return err
		}
		var b []byte
		if g.inPlace {
			b, err = r.unframeGroup(key, chunks, g, *stored)
		} else {
			b, err = decodeGroup(r.dec, key, chunks, g, *stored, (*raw)[:0])
		}
		if err == nil {
			*raw = b
		}
		return err
	})
	if raw != stored {
		r.bufs.put(stored)
		decoded()
	}
	if err != nil {
		r.bufs.put(raw)
		return piece{err: err}
	}
	*raw = (*raw)[:g.rawLen] // a whole uncompressed object is exactly the file
	if _, err := w.WriteAt(*raw, g.rawOff); err != nil {
		r.bufs.put(raw)
		return piece{err: fmt.Errorf("write %d bytes at %d: %w", g.rawLen, g.rawOff, err)}
	}
	return piece{raw: raw}
}

// hashInOrder hashes the groups as the queue orders them, whatever order
// they arrive in, and gives their memory back. After a failure it keeps
// draining, so that every dispatched group returns its bytes to the budget.
func (r *restorer) hashInOrder(queue <-chan chan piece, h hash.Hash) (n int64, err error) {
	for ch := range queue {
		p := <-ch
		if p.err != nil && err == nil {
			err = p.err
		}
		if p.raw != nil {
			if err == nil {
				h.Write(*p.raw)
				n += int64(len(*p.raw))
				r.opts.Progress.Add(int64(len(*p.raw)))
			}
			r.bufs.put(p.raw)
		}
		p.release()
	}
	return n, err
}

// discardAt is the io.WriterAt of a verification that keeps nothing.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
