// Package backup stores a source.Set in the bucket: every file's content
// once, compressed, under its checksum, and then — last — the manifest that
// makes the backup exist.
package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/progress"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Options configure one backup run.
type Options struct {
	Node    manifest.Node
	Cluster string
	Tool    string // s3bak version, recorded in the manifest
	// Concurrency is how many files are read and uploaded at once.
	Concurrency int
	Logger      *slog.Logger
	Progress    progress.Counter
	Now         func() time.Time
}

// Engine runs backups with one client, encoder and uploader.
type Engine struct {
	client *transfer.Client
	enc    *chunk.Encoder
	up     *transfer.Uploader
	opts   Options
}

// New returns an Engine.
func New(client *transfer.Client, enc *chunk.Encoder, up *transfer.Uploader, o Options) *Engine {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = progress.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Engine{client: client, enc: enc, up: up, opts: o}
}

// Result summarises a finished backup.
type Result struct {
	Manifest      *manifest.Manifest
	ManifestKey   string
	Uploaded      int   // objects uploaded by this run
	UploadedBytes int64 // stored bytes uploaded by this run
	Reused        int   // files whose content this run found already stored
}

// Run backs up set. It returns an error, and writes no manifest, unless
// every file was stored and verified.
func (e *Engine) Run(ctx context.Context, set *source.Set) (*Result, error) {
	if err := e.opts.Node.Validate(); err != nil {
		return nil, err
	}
	started := e.opts.Now().UTC()
	m := &manifest.Manifest{
		Schema: manifest.SchemaVersion, ID: manifest.NewID(started), Kind: set.Kind,
		Cluster: e.opts.Node.Cluster, Node: e.opts.Node.Name, Tag: set.Tag,
		Started: started, Tool: e.opts.Tool, Meta: set.Meta,
		Files: make([]manifest.File, len(set.Files)),
	}
	res := &Result{Manifest: m}
	st := &state{e: e, res: res, inodes: map[inode]*inodeResult{}, keys: map[string]*keyResult{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.Concurrency)
	for i, f := range set.Files {
		g.Go(func() error {
			mf, err := st.file(gctx, f)
			if err != nil {
				return fmt.Errorf("back up %s (%s): %w", f.Path, f.Abs, err)
			}
			m.Files[i] = mf
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.Finished = e.opts.Now().UTC()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("refusing to write an invalid manifest: %w", err)
	}
	b, err := m.Encode()
	if err != nil {
		return nil, err
	}
	res.ManifestKey = e.opts.Node.Root() + manifest.ManifestKey(m.ID)
	if err := e.client.PutBytesIfAbsent(ctx, res.ManifestKey, b, "application/json"); err != nil {
		if errors.Is(err, transfer.ErrExists) {
			return nil, fmt.Errorf("a backup %s of node %s already exists (two runs in the same second?): %w", m.ID, m.Node, err)
		}
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	e.opts.Logger.Info("backup complete", "id", m.ID, "files", len(m.Files), "raw_bytes", m.RawBytes(),
		"uploaded_objects", res.Uploaded, "uploaded_bytes", res.UploadedBytes, "reused", res.Reused,
		"manifest", res.ManifestKey)
	return res, nil
}

type inode struct{ dev, ino uint64 }

// state shares work between files of one run: hard links are read once and
// equal contents are uploaded once.
type state struct {
	e      *Engine
	mu     sync.Mutex
	res    *Result
	inodes map[inode]*inodeResult
	keys   map[string]*keyResult
}

type inodeResult struct {
	done chan struct{}
	f    manifest.File
	err  error
}

type keyResult struct {
	done   chan struct{}
	layout *chunk.Layout
	err    error
}

func (s *state) file(ctx context.Context, f source.File) (manifest.File, error) {
	if f.Ino == 0 {
		return s.e.store(ctx, s, f)
	}
	id := inode{f.Dev, f.Ino}
	s.mu.Lock()
	r, ok := s.inodes[id]
	if !ok {
		r = &inodeResult{done: make(chan struct{})}
		s.inodes[id] = r
	}
	s.mu.Unlock()
	if !ok {
		r.f, r.err = s.e.store(ctx, s, f)
		close(r.done)
	} else {
		select {
		case <-r.done:
		case <-ctx.Done():
			return manifest.File{}, ctx.Err()
		}
		s.e.opts.Progress.Add(f.Size)
	}
	if r.err != nil {
		return manifest.File{}, r.err
	}
	mf := r.f
	mf.Path = f.Path
	return mf, nil
}

// uploadOnce runs upload for key unless this run already stored it, and
// returns the stored object's layout either way.
func (s *state) uploadOnce(ctx context.Context, key string, upload func() (*chunk.Layout, error)) (*chunk.Layout, error) {
	s.mu.Lock()
	r, ok := s.keys[key]
	if !ok {
		r = &keyResult{done: make(chan struct{})}
		s.keys[key] = r
	}
	s.mu.Unlock()
	if ok {
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if r.err == nil {
			s.mu.Lock()
			s.res.Reused++
			s.mu.Unlock()
		}
		return r.layout, r.err
	}
	r.layout, r.err = upload()
	close(r.done)
	if r.err == nil {
		s.mu.Lock()
		s.res.Uploaded++
		s.res.UploadedBytes += r.layout.StoredSize
		s.mu.Unlock()
	}
	return r.layout, r.err
}
