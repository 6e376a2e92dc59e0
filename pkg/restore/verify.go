package restore

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/progress"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Problem is one finding of Verify.
type Problem struct {
	Path string
	Key  string
	Err  error
}

// VerifyResult lists what Verify checked and found.
type VerifyResult struct {
	Objects  int   // stored contents checked: objects, and files in packs
	Bytes    int64 // stored bytes checked (deep: downloaded)
	Problems []Problem
}

// Verify checks that every object of m exists with its recorded size; deep
// also downloads each one, as a restore does (ranged GETs in parallel, every
// chunk's CRC32C checked, DefaultMaxMemory of buffers at most), and checks
// its SHA-256. Each stored content is checked once however many files
// share it; the files packed into one object are each checked.
func Verify(ctx context.Context, c *transfer.Client, node manifest.Node, m *manifest.Manifest, deep bool, concurrency int, p progress.Counter) (*VerifyResult, error) {
	if p == nil {
		p = progress.Discard
	}
	type where struct {
		key string
		off int64
	}
	seen := map[where]bool{}
	var unique []manifest.File
	for _, f := range m.Files {
		if w := (where{f.Key, f.Offset}); !seen[w] {
			seen[w] = true
			unique = append(unique, f)
		}
	}
	res := &VerifyResult{Objects: len(unique)}
	problems := make([]error, len(unique))
	r := &restorer{c: c, root: node.Root(), budget: budget.New(DefaultMaxMemory), bufs: newBuffers(DefaultMaxMemory), opts: Options{Progress: p}}
	if deep {
		dec, err := chunk.NewDecoder(runtime.GOMAXPROCS(0))
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		r.dec = dec
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for i, f := range unique {
		g.Go(func() error {
			problems[i] = r.check(gctx, f, deep)
			// Only the context ends the run early: every object gets
			// checked and every problem reported.
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, err := range problems {
		f := unique[i]
		res.Bytes += f.StoredSize
		if err != nil {
			res.Problems = append(res.Problems, Problem{Path: f.Path, Key: node.Root() + f.Key, Err: err})
		}
	}
	return res, nil
}

func (r *restorer) check(ctx context.Context, f manifest.File, deep bool) error {
	key := r.root + f.Key
	if f.StoredSize == 0 && f.Size == 0 {
		return nil // empty files store an empty object or none at all
	}
	info, err := r.c.Head(ctx, key)
	if errors.Is(err, transfer.ErrNotFound) {
		return fmt.Errorf("object %s is missing", key)
	}
	if err != nil {
		return err
	}
	if err := checkObjectSize(f, key, info.Size); err != nil {
		return err
	}
	if !deep {
		return nil
	}
	return r.download(ctx, f, discardAt{}, true)
}
