// Package restore brings a backup back onto disk: every file downloaded
// chunk by chunk with parallel ranged GETs, decompressed, checked chunk by
// chunk (CRC32C) and whole (SHA-256) under a temporary name, and moved into
// place only when all of them are verified. Every buffer is held under one
// memory budget shared by all files.
package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/progress"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

// Options configure a restore.
type Options struct {
	Target      string
	Force       bool // replace existing files
	Concurrency int
	// Filter keeps the files to restore; nil keeps all.
	Filter   func(path string) bool
	Logger   *slog.Logger
	Progress progress.Counter
	// MaxMemory bounds the bytes held in download and decode buffers by
	// all files and workers together; DefaultMaxMemory when 0, unbounded
	// when negative. A single chunk larger than the bound still restores,
	// alone.
	MaxMemory int64
	// Budget, when set, is used instead of MaxMemory: a caller may share
	// one budget with other work, or read its Peak.
	Budget *budget.Budget
	// Buffered writes every file through the page cache. By default files
	// of 1 MiB and more are written with O_DIRECT where the file system
	// allows it (see fileWriter).
	Buffered bool
}

// DefaultMaxMemory holds 16 default-size chunks in flight (each its stored
// and its decoded bytes).
const DefaultMaxMemory = 256 << 20

// Result summarises a restore.
type Result struct {
	Files int
	Bytes int64
	Paths []string // restored paths, relative to the target
}

// ErrExists means a file to restore is already on disk and Force is off.
var ErrExists = errors.New("file exists")

// ErrVerify means restored bytes do not match the manifest.
var ErrVerify = errors.New("verification failed")

// Run restores the files of m kept by the filter under o.Target.
func Run(ctx context.Context, c *transfer.Client, node manifest.Node, m *manifest.Manifest, o Options) (*Result, error) {
	if o.Target == "" {
		return nil, errors.New("no target directory: set --target")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = progress.Discard
	}
	if o.Budget == nil {
		o.Budget = budget.New(cmp.Or(o.MaxMemory, DefaultMaxMemory))
	}
	// The manifest was validated on load; check again, it is cheap and
	// Run may be handed a manifest from elsewhere.
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.ID, err)
	}
	files := selectFiles(m, o.Filter)
	if len(files) == 0 {
		return nil, fmt.Errorf("backup %s has no file that matches the filters", m.ID)
	}
	target, err := filepath.Abs(o.Target)
	if err != nil {
		return nil, err
	}
	if err := checkTarget(target, files, o.Force); err != nil {
		return nil, err
	}
	// As many decoders as CPUs: more workers than that may wait on the
	// network, but decoding is CPU work.
	dec, err := chunk.NewDecoder(runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	r := &restorer{c: c, root: node.Root(), target: target, dec: dec, budget: o.Budget, bufs: newBuffers(poolLimit(o.Budget)), opts: o}
	return r.run(ctx, files)
}

// poolLimit is how many idle buffer bytes a restore keeps: as many as its
// budget lets it hold in flight, so that the steady state allocates none.
func poolLimit(b *budget.Budget) int64 {
	if s := b.Size(); s > 0 {
		return s
	}
	return DefaultMaxMemory
}

func selectFiles(m *manifest.Manifest, keep func(string) bool) []manifest.File {
	var out []manifest.File
	for _, f := range m.Files {
		if keep == nil || keep(f.Path) {
			out = append(out, f)
		}
	}
	return out
}

// checkTarget refuses before a byte is downloaded: existing files (unless
// forced) and a disk too small for what is restored.
func checkTarget(target string, files []manifest.File, force bool) error {
	var need int64
	for _, f := range files {
		need += f.Size
		if force {
			continue
		}
		if _, err := os.Lstat(filepath.Join(target, filepath.FromSlash(f.Path))); err == nil {
			return fmt.Errorf("%s: %w; restore into an empty directory, or pass --force to replace existing files", filepath.Join(target, f.Path), ErrExists)
		}
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("create target directory: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err == nil {
		free := int64(st.Bavail) * int64(st.Bsize)
		if free < need {
			return fmt.Errorf("target %s has %s free, the restore needs %s: free space there, restore elsewhere, or fewer keyspaces or tables (--keyspace, --table)", target, units.Human(free), units.Human(need))
		}
	}
	return nil
}

type restorer struct {
	c      *transfer.Client
	root   string
	target string
	dec    *chunk.Decoder
	budget *budget.Budget // shared by every file and worker
	bufs   *buffers
	opts   Options

	mu    sync.Mutex
	temps []staged
}

type staged struct{ tmp, final string }

func (r *restorer) run(ctx context.Context, files []manifest.File) (*Result, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Concurrency)
	runs, rest := splitPacked(files)
	for _, run := range runs {
		g.Go(func() error {
			done, err := r.fetchRun(gctx, run)
			if err != nil {
				return err
			}
			r.mu.Lock()
			r.temps = append(r.temps, done...)
			r.mu.Unlock()
			return nil
		})
	}
	for _, f := range rest {
		g.Go(func() error {
			tmp, err := r.fetch(gctx, f)
			if err != nil {
				return fmt.Errorf("restore %s: %w", f.Path, err)
			}
			r.mu.Lock()
			r.temps = append(r.temps, staged{tmp, filepath.Join(r.target, filepath.FromSlash(f.Path))})
			r.mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		r.removeTemps()
		return nil, fmt.Errorf("%w (nothing was moved into place)", err)
	}
	return r.commit(files)
}

// commit makes every verified file durable, moves them into place and
// makes the renames durable. Without --force nothing was there before, so a
// rename that fails takes back the ones before it: all files or none.
func (r *restorer) commit(files []manifest.File) (*Result, error) {
	dirs := map[string]bool{}
	for _, s := range r.temps {
		dirs[filepath.Dir(s.final)] = true
	}
	if err := syncFilesystems(dirs); err != nil {
		r.removeTemps()
		return nil, fmt.Errorf("%w (nothing was moved into place)", err)
	}
	for i, s := range r.temps {
		if err := os.Rename(s.tmp, s.final); err != nil {
			for _, rest := range r.temps[i:] {
				os.Remove(rest.tmp)
			}
			what := "the files before it are in place"
			if !r.opts.Force {
				for _, done := range r.temps[:i] {
					os.Remove(done.final)
				}
				what = "nothing was left in place"
			}
			return nil, fmt.Errorf("move %s into place: %w (%s)", s.final, err, what)
		}
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return nil, err
		}
	}
	res := &Result{Files: len(files)}
	for _, f := range files {
		res.Bytes += f.Size
		res.Paths = append(res.Paths, f.Path)
	}
	r.opts.Logger.Info("restore complete", "files", res.Files, "bytes", res.Bytes, "target", r.target)
	return res, nil
}

func (r *restorer) removeTemps() {
	for _, s := range r.temps {
		os.Remove(s.tmp)
	}
	r.temps = nil
}

// syncFilesystems flushes the written files with one syncfs per file
// system instead of one fsync per file: thousands of small sstable
// components would otherwise wait for the disk one by one.
func syncFilesystems(dirs map[string]bool) error {
	done := map[uint64]bool{}
	for d := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return err
		}
		if done[st.Dev] {
			continue
		}
		done[st.Dev] = true
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", d, err)
		}
		err = unix.Syncfs(fd)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("sync the file system of %s: %w", d, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
