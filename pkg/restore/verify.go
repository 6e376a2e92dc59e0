package restore

import (
	"cmp"
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

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Deep downloads every object, as a restore does, and checks its
	// SHA-256; otherwise only its presence and size are checked.
	Deep        bool
	Concurrency int // objects checked at once; 1 when 0
	Progress    progress.Counter
	// MaxMemory bounds the bytes a deep check holds in download and decode
	// buffers, as Options.MaxMemory does a restore's: DefaultMaxMemory when
	// 0, unbounded when negative.
	MaxMemory int64
	// Budget, when set, is used instead of MaxMemory.
	Budget *budget.Budget
}

// Verify checks that every object of m exists with its recorded size; with
// o.Deep it also downloads each one, as a restore does (ranged GETs in
// parallel, every chunk's CRC32C checked, within the memory budget), and
// checks its SHA-256. Each stored content is checked once however many
// files share it; the files packed into one object are each checked.
//
// Problems are verification failures only (ErrVerify): an object missing,
// of the wrong size, or whose bytes fail their check on two fresh reads;
// every object is checked and every problem reported. An object that could
// not be checked — the server kept failing (a 500 after the SDK's retries),
// the network broke — says nothing about the backup: Verify stops, and
// returns the problems found so far with an error that names the object and
// is not ErrVerify.
func Verify(ctx context.Context, c *transfer.Client, node manifest.Node, m *manifest.Manifest, o VerifyOptions) (*VerifyResult, error) {
	if o.Progress == nil {
		o.Progress = progress.Discard
	}
	if o.Budget == nil {
		o.Budget = budget.New(cmp.Or(o.MaxMemory, DefaultMaxMemory))
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
	r := &restorer{c: c, root: node.Root(), budget: o.Budget, bufs: newBuffers(poolLimit(o.Budget)), opts: Options{Progress: o.Progress}}
	if o.Deep {
		dec, err := chunk.NewDecoder(runtime.GOMAXPROCS(0))
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		r.dec = dec
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.Concurrency, 1))
	for i, f := range unique {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			err := r.check(gctx, f, o.Deep)
			problems[i] = err
			if err != nil && !errors.Is(err, ErrVerify) {
				// Not a finding but a check that could not be made: the
				// others would most likely fail the same way, retries
				// and all, so the run ends here.
				return fmt.Errorf("%s: %w", f.Path, err)
			}
			// Otherwise every object gets checked and every problem
			// reported.
			return nil
		})
	}
	werr := g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, err := range problems {
		f := unique[i]
		res.Bytes += f.StoredSize
		if errors.Is(err, ErrVerify) {
			res.Problems = append(res.Problems, Problem{Path: f.Path, Key: node.Root() + f.Key, Err: err})
		}
	}
	if werr != nil {
		return res, fmt.Errorf("verify stopped: an object could not be checked (this is not a verification failure; try again): %w", werr)
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
		return fmt.Errorf("%w: object %s is missing", ErrVerify, key)
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
