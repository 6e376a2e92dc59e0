package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

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
	Failed   int // contents that failed, of which Problems lists the first maxProblems
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

// maxProblems bounds the problems a verify lists; the rest are counted.
const maxProblems = 1000

// Verify checks that every object of m exists with its recorded size; with
// o.Deep it also downloads each one, as a restore does (ranged GETs in
// parallel, within the memory budget), and checks its SHA-256 (a file that
// fails it is read again with every chunk's CRC32C checked). Each object is
// asked for its size once however many files it holds; a deep check
// downloads a pack's files a run at a time, and each content of an object
// of its own once.
//
// Problems are verification failures only (ErrVerify): an object missing,
// of the wrong size, or whose bytes fail their check on two fresh reads;
// every object is checked and every problem reported (the first
// maxProblems listed, all counted). An object that could not be checked —
// the server kept failing (a 500 after the SDK's retries), the network
// broke — says nothing about the backup: Verify stops, and returns the
// problems found so far with an error that names the object and is not
// ErrVerify.
func Verify(ctx context.Context, c *transfer.Client, node manifest.Node, m *manifest.Manifest, o VerifyOptions) (*VerifyResult, error) {
	return VerifySource(ctx, c, node, Files(m.Files), o)
}

// VerifySource is Verify of the files of src, read file by file.
func VerifySource(ctx context.Context, c *transfer.Client, node manifest.Node, src Source, o VerifyOptions) (*VerifyResult, error) {
	if o.Progress == nil {
		o.Progress = progress.Discard
	}
	if o.Budget == nil {
		o.Budget = budget.New(cmp.Or(o.MaxMemory, DefaultMaxMemory))
	}
	v := &verifier{restorer: restorer{c: c, root: node.Root(), budget: o.Budget, bufs: newBuffers(poolLimit(o.Budget)),
		opts: Options{Progress: o.Progress}}, deep: o.Deep, sizes: map[string]*objectSize{}, seen: map[string]bool{}, res: &VerifyResult{}}
	if o.Deep {
		dec, err := chunk.NewDecoder(runtime.GOMAXPROCS(0))
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		v.dec = dec
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.Concurrency, 1))
	readErr := inBatches(gctx, src, func(batch []manifest.File) { v.dispatch(gctx, g, batch) })
	werr := g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, readErr
	}
	if werr != nil {
		return v.res, fmt.Errorf("verify stopped: an object could not be checked (this is not a verification failure; try again): %w", werr)
	}
	return v.res, nil
}

// verifier shares what a verify learns between its workers.
type verifier struct {
	restorer
	deep bool

	mu    sync.Mutex
	sizes map[string]*objectSize // by key: one HEAD an object
	seen  map[string]bool        // objects of their own a deep check downloaded
	res   *VerifyResult
}

type objectSize struct {
	once sync.Once
	size int64
	err  error
}

// dispatch checks a batch of files: each file's object and place in it,
// and with deep each content, a pack's files a run at a time.
func (v *verifier) dispatch(ctx context.Context, g *errgroup.Group, batch []manifest.File) {
	if !v.deep {
		for _, f := range batch {
			g.Go(func() error { return v.note(f, v.checkSize(ctx, f)) })
		}
		return
	}
	runs, rest := splitPacked(batch)
	for _, run := range runs {
		g.Go(func() error {
			whole := true
			for _, f := range run.files {
				err := v.checkSize(ctx, f)
				whole = whole && err == nil
				if err := v.note(f, err); err != nil {
					return err
				}
			}
			if !whole {
				return nil // the pack is missing or short: each file said so
			}
			return v.checkRun(ctx, run)
		})
	}
	for _, f := range rest {
		v.mu.Lock()
		again := v.seen[f.Key]
		v.seen[f.Key] = true
		v.mu.Unlock()
		if again {
			continue // a content of its own, checked once
		}
		g.Go(func() error {
			err := v.checkSize(ctx, f)
			if err == nil {
				err = v.download(ctx, f, discardAt{}, true)
			}
			return v.note(f, err)
		})
	}
}

// checkSize checks that f's object is there and holds f's stored bytes.
func (v *verifier) checkSize(ctx context.Context, f manifest.File) error {
	key := v.root + f.Key
	if f.StoredSize == 0 && f.Size == 0 {
		return nil // empty files store an empty object or none at all
	}
	v.mu.Lock()
	s := v.sizes[key]
	if s == nil {
		s = &objectSize{}
		v.sizes[key] = s
	}
	v.mu.Unlock()
	s.once.Do(func() {
		info, err := v.c.Head(ctx, key)
		s.size, s.err = info.Size, err
		if errors.Is(err, transfer.ErrNotFound) {
			s.err = fmt.Errorf("%w: object %s is missing", ErrVerify, key)
		}
	})
	if s.err != nil {
		return s.err
	}
	return checkObjectSize(f, key, s.size)
}

// checkRun downloads a run of a pack and checks each of its files'
// contents.
// Its files were counted by their size checks: only failures count again.
func (v *verifier) checkRun(ctx context.Context, run packRun) error {
	return v.fetchPacked(ctx, run, nil, func(f manifest.File, raw []byte, err error) error {
		v.opts.Progress.Add(int64(len(raw)))
		if err == nil {
			return nil
		}
		return v.problem(f, err)
	})
}

// note records f's check: a problem when it failed verification, the end
// of the run when it could not be made (the others would most likely fail
// the same way, retries and all).
func (v *verifier) note(f manifest.File, err error) error {
	v.mu.Lock()
	v.res.Objects++
	v.res.Bytes += f.StoredShare()
	v.mu.Unlock()
	return v.problem(f, err)
}

func (v *verifier) problem(f manifest.File, err error) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrVerify):
		if len(v.res.Problems) < maxProblems {
			v.res.Problems = append(v.res.Problems, Problem{Path: f.Path, Key: v.root + f.Key, Err: err})
		}
		v.res.Failed++
		return nil
	}
	return fmt.Errorf("%s: %w", f.Path, err)
}
