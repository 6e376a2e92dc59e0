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
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"

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
	// FollowSymlinks follows links to directories under the target (data
	// directories spread over disks). Without it a restore refuses a
	// directory under the target that is a link (ErrSymlink) and writes
	// nothing outside the target.
	FollowSymlinks bool
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

// ErrNoMatch means the filter keeps none of the backup's files.
var ErrNoMatch = errors.New("nothing to restore")

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
	if len(files) == 0 && len(m.Files) > 0 {
		return nil, fmt.Errorf("backup %s has no file that matches the filters: %w", m.ID, ErrNoMatch)
	}
	abs, err := filepath.Abs(o.Target)
	if err != nil {
		return nil, err
	}
	t, err := openTarget(abs, o.FollowSymlinks, o.Logger)
	if err != nil {
		return nil, err
	}
	defer t.close()
	res, err := run(ctx, c, node, t, files, o)
	if err != nil {
		// A failed restore leaves no directory it made (the empty ones:
		// with --force, files already moved into place stay).
		t.removeCreated()
		return nil, err
	}
	o.Logger.Info("restore complete", "files", res.Files, "bytes", res.Bytes, "target", abs)
	return res, nil
}

func run(ctx context.Context, c *transfer.Client, node manifest.Node, t *targetDir, files []manifest.File, o Options) (*Result, error) {
	dirs := dirsOf(files)
	if err := t.checkLinks(dirs); err != nil {
		return nil, err
	}
	t.removeStaleTemps(dirs)
	t.shared()
	if err := checkTarget(t, files, o.Force); err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return &Result{}, nil // an empty backup
	}
	// As many decoders as CPUs: more workers than that may wait on the
	// network, but decoding is CPU work.
	dec, err := chunk.NewDecoder(runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	r := &restorer{c: c, root: node.Root(), t: t, dec: dec, budget: o.Budget, bufs: newBuffers(poolLimit(o.Budget)), opts: o}
	return r.run(ctx, files)
}

// dirsOf lists the directories of files, relative to the target, sorted.
func dirsOf(files []manifest.File) []string {
	set := map[string]bool{}
	for _, f := range files {
		set[filepath.Dir(filepath.FromSlash(f.Path))] = true
	}
	dirs := make([]string, 0, len(set))
	for d := range set {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs
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
// forced) and a file system too small for what is restored on it.
func checkTarget(t *targetDir, files []manifest.File, force bool) error {
	if !force {
		for _, f := range files {
			rel := filepath.FromSlash(f.Path)
			if _, err := t.lstat(rel); err == nil {
				return fmt.Errorf("%s: %w; restore into an empty directory, or pass --force to replace existing files", t.path(rel), ErrExists)
			}
		}
	}
	return checkSpace(t, files)
}

// checkSpace compares, for each file system the restore writes on (the
// target's, and with --follow-symlinks those its links lead to), the bytes
// free with the bytes restored there.
func checkSpace(t *targetDir, files []manifest.File) error {
	type fsys struct {
		dir  string // a directory on it, relative
		need int64
	}
	byDev := map[uint64]*fsys{}
	devOf := map[string]uint64{} // directory → device of its nearest existing directory
	var dev func(dir string) (uint64, error)
	dev = func(dir string) (uint64, error) {
		if d, ok := devOf[dir]; ok {
			return d, nil
		}
		fi, err := t.statDir(dir)
		if errors.Is(err, fs.ErrNotExist) && dir != "." {
			d, err := dev(filepath.Dir(dir))
			devOf[dir] = d
			return d, err
		}
		if err != nil {
			return 0, err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, nil
		}
		d := uint64(st.Dev)
		devOf[dir] = d
		if byDev[d] == nil {
			byDev[d] = &fsys{dir: dir}
		}
		return d, nil
	}
	for _, f := range files {
		d, err := dev(filepath.Dir(filepath.FromSlash(f.Path)))
		if err != nil {
			return err
		}
		if byDev[d] != nil {
			byDev[d].need += f.Size
		}
	}
	for _, s := range byDev {
		var st unix.Statfs_t
		d, err := t.openFile(s.dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		err = unix.Fstatfs(int(d.Fd()), &st)
		d.Close()
		if err != nil {
			continue
		}
		if free := int64(st.Bavail) * int64(st.Bsize); free < s.need {
			return fmt.Errorf("the file system of %s has %s free, the restore needs %s there: free space there, restore elsewhere, or fewer keyspaces or tables (--keyspace, --table)",
				t.path(s.dir), units.Human(free), units.Human(s.need))
		}
	}
	return nil
}

type restorer struct {
	c      *transfer.Client
	root   string
	t      *targetDir // nil in a verify
	dec    *chunk.Decoder
	budget *budget.Budget // shared by every file and worker
	bufs   *buffers
	opts   Options

	mu    sync.Mutex
	temps []staged
}

// staged is a verified file under its temporary name, both relative to
// the target.
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
			r.temps = append(r.temps, staged{tmp, filepath.FromSlash(f.Path)})
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
	if err := r.syncFilesystems(dirs); err != nil {
		r.removeTemps()
		return nil, fmt.Errorf("%w (nothing was moved into place)", err)
	}
	for i, s := range r.temps {
		if err := r.t.rename(s.tmp, s.final); err != nil {
			for _, rest := range r.temps[i:] {
				r.t.remove(rest.tmp)
			}
			what := "the files before it are in place"
			if !r.opts.Force {
				for _, done := range r.temps[:i] {
					r.t.remove(done.final)
				}
				what = "nothing was left in place"
			}
			r.temps = nil
			return nil, fmt.Errorf("move %s into place: %w (%s)", r.t.path(s.final), err, what)
		}
	}
	r.temps = nil
	for d := range dirs {
		if err := r.syncDir(d); err != nil {
			return nil, err
		}
	}
	res := &Result{Files: len(files)}
	for _, f := range files {
		res.Bytes += f.Size
		res.Paths = append(res.Paths, f.Path)
	}
	return res, nil
}

func (r *restorer) removeTemps() {
	for _, s := range r.temps {
		r.t.remove(s.tmp)
	}
	r.temps = nil
}

// syncFilesystems flushes the written files with one syncfs per file
// system instead of one fsync per file: thousands of small sstable
// components would otherwise wait for the disk one by one.
func (r *restorer) syncFilesystems(dirs map[string]bool) error {
	done := map[uint64]bool{}
	for d := range dirs {
		f, err := r.t.openFile(d, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil || done[st.Dev] {
			f.Close()
			if err != nil {
				return fmt.Errorf("stat %s: %w", r.t.path(d), err)
			}
			continue
		}
		done[st.Dev] = true
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			return fmt.Errorf("sync the file system of %s: %w", r.t.path(d), err)
		}
	}
	return nil
}

func (r *restorer) syncDir(dir string) error {
	d, err := r.t.openFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", r.t.path(dir), err)
	}
	return nil
}
