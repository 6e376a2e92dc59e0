// Package restore brings a backup back onto disk: every file downloaded
// chunk by chunk with parallel ranged GETs, decompressed, checked whole
// (SHA-256; chunk by chunk, CRC32C, when read again after a failure) under
// a temporary name, and moved into place only when all of them are
// verified. Every buffer is held under one memory budget shared by all
// files.
package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
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
	// Pieces is how many ranged GETs a span of an object is fetched in at
	// most; 0: by the bucket's round trip (see restorer.pieces).
	Pieces int
}

// DefaultMaxMemory holds 16 default-size chunks in flight (each its stored
// and its decoded bytes).
const DefaultMaxMemory = 256 << 20

// Result summarises a restore.
type Result struct {
	Files int
	Bytes int64
	Dirs  []string // directories of the restored files, relative to the target, slash-separated, sorted
}

// ErrExists means a file to restore is already on disk and Force is off.
var ErrExists = errors.New("file exists")

// ErrNoMatch means the filter keeps none of the backup's files.
var ErrNoMatch = errors.New("nothing to restore")

// ErrVerify means restored bytes do not match the manifest.
var ErrVerify = errors.New("verification failed")

// Run restores the files of m kept by the filter under o.Target.
func Run(ctx context.Context, c *transfer.Client, node manifest.Node, m *manifest.Manifest, o Options) (*Result, error) {
	// The manifest was validated on load; check again, it is cheap and
	// Run may be handed a manifest from elsewhere.
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", m.ID, err)
	}
	return RunSource(ctx, c, node, Files(m.Files), o)
}

// RunSource restores the files of src kept by the filter under o.Target,
// reading src file by file: its memory does not grow with the number of
// files.
func RunSource(ctx context.Context, c *transfer.Client, node manifest.Node, src Source, o Options) (*Result, error) {
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
	sel := filtered{src, o.Filter}
	p, err := planOf(src, o.Filter)
	if err != nil {
		return nil, err
	}
	if p.files == 0 && p.all > 0 {
		return nil, fmt.Errorf("the backup has no file that matches the filters: %w", ErrNoMatch)
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
	res, err := run(ctx, c, node, t, sel, p, o)
	if err != nil {
		// A failed restore leaves no directory it made (the empty ones:
		// with --force, files already moved into place stay).
		t.removeCreated()
		return nil, err
	}
	o.Logger.Info("restore complete", "files", res.Files, "bytes", res.Bytes, "target", abs)
	return res, nil
}

// survey is what a first pass over the files learns.
type survey struct {
	all, files int // in the backup, and kept by the filter
	bytes      int64
	dirs       []string // of the kept files, native separators, sorted
	dirBytes   map[string]int64
	dirFiles   map[string]int
}

// planOf reads the files once: how many, how big, in which directories.
// A damaged manifest fails here, before anything is written.
func planOf(src Source, keep func(string) bool) (survey, error) {
	p := survey{dirBytes: map[string]int64{}, dirFiles: map[string]int{}}
	for f, err := range src.Files() {
		if err != nil {
			return p, err
		}
		p.all++
		if keep != nil && !keep(f.Path) {
			continue
		}
		p.files++
		p.bytes += f.Size
		dir := filepath.Dir(filepath.FromSlash(f.Path))
		p.dirBytes[dir] += f.Size
		p.dirFiles[dir]++
	}
	p.dirs = slices.Sorted(maps.Keys(p.dirBytes))
	return p, nil
}

func run(ctx context.Context, c *transfer.Client, node manifest.Node, t *targetDir, files Source, p survey, o Options) (*Result, error) {
	if err := t.checkLinks(p.dirs); err != nil {
		return nil, err
	}
	nonce := newNonce()
	st, err := t.planStaging(p, nonce)
	if err != nil {
		return nil, err
	}
	t.removeStaleTemps(p.dirs)
	t.shared()
	if err := checkTarget(t, files, o.Force, p); err != nil {
		return nil, err
	}
	if p.files == 0 {
		return &Result{}, nil // an empty backup
	}
	// As many decoders as CPUs: more workers than that may wait on the
	// network, but decoding is CPU work.
	dec, err := chunk.NewDecoder(runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	r := &restorer{c: c, root: node.Root(), t: t, dec: dec, budget: o.Budget, bufs: newBuffers(poolLimit(o.Budget)), opts: o, nonce: nonce, staged: st}
	r.flush = &flusher{sync: r.syncTarget}
	return r.run(ctx, files, p)
}

// withAncestors is dirs and every directory above them, each once.
func withAncestors(dirs []string) []string {
	seen := map[string]bool{}
	for _, d := range dirs {
		for ; !seen[d]; d = filepath.Dir(d) {
			seen[d] = true
			if d == "." || d == string(filepath.Separator) {
				break
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// poolLimit is how many idle buffer bytes a restore keeps: as many as its
// budget lets it hold in flight, so that the steady state allocates none.
func poolLimit(b *budget.Budget) int64 {
	if s := b.Size(); s > 0 {
		return s
	}
	return DefaultMaxMemory
}

// checkTarget refuses before a byte is downloaded: existing files (unless
// forced) and a file system too small for what is restored on it. Only
// the files of directories already there are looked for: into a new
// target, the check does not read the files at all.
func checkTarget(t *targetDir, files Source, force bool, p survey) error {
	if !force {
		there := map[string]bool{}
		for _, d := range p.dirs {
			if _, err := t.statDir(d); err == nil {
				there[d] = true
			}
		}
		if len(there) > 0 {
			if err := checkAbsent(t, files, there); err != nil {
				return err
			}
		}
	}
	return checkSpace(t, p.dirBytes)
}

// checkAbsent refuses a file that is already there, of those in the
// directories there.
func checkAbsent(t *targetDir, files Source, there map[string]bool) error {
	for f, err := range files.Files() {
		if err != nil {
			return err
		}
		rel := filepath.FromSlash(f.Path)
		if there[filepath.Dir(rel)] && t.exists(rel) {
			return fmt.Errorf("%s: %w; restore into an empty directory, or pass --force to replace existing files", t.path(rel), ErrExists)
		}
	}
	return nil
}

// checkSpace compares, for each file system the restore writes on (the
// target's, and with --follow-symlinks those its links lead to), the bytes
// free with the bytes restored there (dirBytes: by directory).
func checkSpace(t *targetDir, dirBytes map[string]int64) error {
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
	for dir, n := range dirBytes {
		d, err := dev(dir)
		if err != nil {
			return err
		}
		if byDev[d] != nil {
			byDev[d].need += n
		}
	}
	for _, s := range byDev {
		var st unix.Statfs_t
		d, err := t.openDir(s.dir)
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
	nonce  uint64 // of the temporary names (tempName)
	staged staging
	flush  *flusher // nil in a verify
}

// batchFiles is how many files are planned at once: their packed files
// grouped into one GET per run of a pack, the others fetched one by one.
const batchFiles = 4096

func (r *restorer) run(ctx context.Context, files Source, p survey) (*Result, error) {
	err := r.fetchAll(ctx, files)
	r.flush.wait()
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		r.removeTemps(files, -1)
		return nil, fmt.Errorf("%w (nothing was moved into place)", err)
	}
	return r.commit(files, p)
}

// fetchAll downloads and verifies every file under its temporary name,
// a batch of files at a time.
func (r *restorer) fetchAll(ctx context.Context, files Source) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Concurrency)
	dispatch := func(batch []manifest.File) {
		runs, rest := splitPacked(batch)
		for _, run := range runs {
			g.Go(func() error { return r.fetchRun(gctx, run) })
		}
		for _, f := range rest {
			g.Go(func() error {
				if err := r.fetch(gctx, f); err != nil {
					return fmt.Errorf("restore %s: %w", f.Path, err)
				}
				return nil
			})
		}
	}
	readErr := inBatches(gctx, files, dispatch)
	err := g.Wait()
	if readErr != nil {
		return readErr
	}
	return err
}
