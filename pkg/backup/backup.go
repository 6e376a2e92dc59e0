// Package backup stores a source.Set in the bucket: every file's content
// once, compressed, under its checksum, and then — last — the manifest that
// makes the backup exist.
package backup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/budget"
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
	// Known is what is stored already (catalog.Known): a file it knows by
	// fingerprint is not read, a content it knows is not uploaded. Every
	// file stored is recorded in it. Nil stores everything.
	Known Known
	// Full reads and uploads every file even when Known has it (and still
	// records into Known).
	Full bool
	// Budget bounds the bytes held in buffers by all files at once (nil:
	// unbounded).
	Budget *budget.Budget
	// TempDir holds the manifest while it is written and the catalog's
	// records ("" is TMPDIR): some 100 bytes a file, on disk instead of in
	// memory.
	TempDir string
	// PackSize is the size of the packs that small files are stored in
	// together (DefaultPackSize when 0, no packing when negative, e.g.
	// NoPacking). A file whose stored form is at most a sixteenth of it is
	// packed.
	PackSize int64
	// BeforeManifest, when set, runs once every content is stored and
	// right before the manifest is written, with the distinct objects the
	// manifest references (keys relative to the node's root; m holds no
	// files): s3bak's --retain-days extends the Object Lock retention of
	// the objects the backup reuses there, and may add to m.Meta. Its
	// error fails the backup, with no manifest.
	BeforeManifest func(ctx context.Context, m *manifest.Manifest, keys []string) error
}

// NoPacking as Options.PackSize stores every file in an object of its own;
// s3bak's --pack-size 0 means it.
const NoPacking = -1

// Known is the engine's view of a node's catalog; *catalog.Index is one.
type Known interface {
	// Lookup fills f's stored object from a file fingerprint; when it
	// reports false, f is left as it was.
	Lookup(fingerprint string, f *manifest.File) bool
	// Content fills f's stored object from f.SHA256 and f.Size; when it
	// reports false, f is left as it was.
	Content(f *manifest.File) bool
	// Record notes that f's content is stored.
	Record(fingerprint string, f *manifest.File)
}

// Engine runs backups with one client, encoder and uploader.
type Engine struct {
	client *transfer.Client
	enc    *chunk.Encoder
	up     *transfer.Uploader
	opts   Options
	// fence, when set, proves the node's lock is still held; it runs right
	// before the manifest is written.
	fence func(context.Context) error
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
	if o.Budget == nil {
		o.Budget = budget.New(0)
	}
	return &Engine{client: client, enc: enc, up: up, opts: o}
}

// Result summarises a finished backup.
type Result struct {
	Manifest      *manifest.Manifest
	ManifestKey   string
	Uploaded      int   // contents stored by this run (in objects of their own or in packs)
	UploadedBytes int64 // their stored bytes
	Packs         int   // packs uploaded, holding the small contents among them
	Reused        int   // files whose content was found already stored
	Duplicates    int   // of Reused, files whose content another file of this run stored
	Unread        int   // of those, files known by fingerprint and not read at all
	UnreadBytes   int64 // their raw bytes

	touched map[string]bool // large objects uploaded or continued
}

// Run backs up set. It returns an error, and writes no manifest, unless
// every file was stored and verified.
func (e *Engine) Run(ctx context.Context, set *source.Set) (*Result, error) {
	if err := e.opts.Node.Validate(); err != nil {
		return nil, err
	}
	return e.run(ctx, e.newManifest(set), set)
}

func (e *Engine) newManifest(set *source.Set) *manifest.Manifest {
	started := e.opts.Now().UTC()
	return &manifest.Manifest{
		Schema: manifest.SchemaVersion, ID: manifest.NewID(started), Kind: set.Kind,
		Cluster: e.opts.Node.Cluster, Node: e.opts.Node.Name, Tag: set.Tag,
		Started: started, Tool: e.opts.Tool, Meta: set.Meta,
	}
}

func (e *Engine) run(ctx context.Context, m *manifest.Manifest, set *source.Set) (*Result, error) {
	res := &Result{Manifest: m}
	// The manifest lists files in path order, and is written as they are
	// stored: in that order, with a bounded window of files ahead. (A
	// grouped set's groups come sorted.)
	set.Sort()
	st := &state{e: e, res: res}
	st.keys.forget = true
	out, err := newOrdered(e.opts.TempDir)
	if err != nil {
		return nil, err
	}
	defer out.close()
	if size := e.packSize(); size > 0 {
		// The packs' memory is carved out of the budget for the whole run,
		// so that no file ever waits for it (packSize keeps it to a quarter).
		release, err := e.opts.Budget.Carve(ctx, packsInMemory*size, 0)
		if err != nil {
			return nil, err
		}
		defer release()
		st.packs = newPacker(ctx, e, size)
	}
	err = st.files(ctx, out, set)
	packs, perr := st.packs.close()
	res.Packs = packs
	if err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	res.touched = st.touched
	return e.finish(ctx, m, out, res)
}

// packSize is the pack size in use: Options.PackSize, but no more than a
// quarter of a bounded budget for all packs in memory together; 0 when
// packing is off or the budget is too small for it.
func (e *Engine) packSize() int64 {
	size := e.opts.PackSize
	if size < 0 {
		return 0
	}
	if size == 0 {
		size = DefaultPackSize
	}
	if b := e.opts.Budget.Size(); b > 0 {
		size = min(size, b/4/packsInMemory)
	}
	if size < minPackSize {
		return 0
	}
	return size
}

// minPackSize is the smallest pack worth making.
const minPackSize = 256 << 10

// files stores every file of set, concurrently, writing each one's
// record to out in set's order. A grouped set is listed a group at a
// time, the next while the last one's files are still being stored.
func (st *state) files(ctx context.Context, out *ordered, set *source.Set) error {
	e := st.e
	g, gctx := errgroup.WithContext(ctx)
	// Workers that live for the run rather than a goroutine a file: a new
	// goroutine's stack grows again, copied, to the depth of the zstd
	// encoder, 5% of a small-files backup's CPU.
	jobs := make(chan *job)
	last := st.lastPack()
	for range e.opts.Concurrency {
		g.Go(func() error {
			for j := range jobs {
				if err := st.do(gctx, out, j); err != nil {
					return err
				}
				last.done(j)
			}
			return nil
		})
	}
	send := func(j *job) error {
		last.sent(j)
		select {
		case jobs <- j:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	}
	groups := grouping{limit: st.groupLimit()}
	n := 0
	listErr := set.Each(gctx, func(files []source.File) error {
		linked := linkedInodes(files)
		for _, f := range files {
			if err := out.reserve(gctx); err != nil {
				return err // g.Wait has the cause, unless ctx was cancelled
			}
			taken, full := groups.add(f, n, linked)
			if full != nil {
				if err := send(full); err != nil {
					return err
				}
			}
			if !taken {
				if err := send(&job{i: n, f: f, linked: linked}); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	})
	if j := groups.take(); j != nil && listErr == nil {
		listErr = send(j)
	}
	if listErr == nil {
		last.listed()
	}
	close(jobs)
	if err := g.Wait(); err != nil {
		return err
	}
	if listErr != nil {
		return fmt.Errorf("list the snapshot's files: %w", listErr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return out.end(n)
}

// job is what a worker stores: one file, or a group of small files.
type job struct {
	i      int // f's index in the set
	f      source.File
	linked map[inode]bool
	group  []source.File // instead of f: files stored together
	at     []int         // the group's files' indexes
}

// do stores j's files and hands their records to out.
func (st *state) do(ctx context.Context, out *ordered, j *job) error {
	if j.group == nil {
		mf, err := st.file(ctx, j.f, j.linked)
		if err != nil {
			return fmt.Errorf("back up %s (%s): %w", j.f.Path, j.f.Abs(), err)
		}
		return out.put(j.i, mf)
	}
	mfs, err := st.e.storeGroup(ctx, st, j.group)
	if err != nil {
		return err
	}
	for k, mf := range mfs {
		if err := out.put(j.at[k], mf); err != nil {
			return err
		}
	}
	return nil
}

// finish writes the manifest, last, once every content is stored.
func (e *Engine) finish(ctx context.Context, m *manifest.Manifest, out *ordered, res *Result) (*Result, error) {
	m.Finished = e.opts.Now().UTC()
	if e.opts.BeforeManifest != nil {
		if err := e.opts.BeforeManifest(ctx, m, out.referenced()); err != nil {
			return nil, err
		}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("refusing to write an invalid manifest: %w", err)
	}
	head, tail, err := out.w.Finish(m)
	if err != nil {
		return nil, err
	}
	body, size := out.object(head, tail)
	res.ManifestKey = e.opts.Node.Root() + manifest.ManifestKey(m.ID)
	if e.fence != nil {
		if err := e.fence(ctx); err != nil {
			return nil, fmt.Errorf("before writing manifest %s: %w", m.ID, err)
		}
	}
	if _, err := e.client.PutReader(ctx, res.ManifestKey, body, size, "application/zstd", transfer.Cond{IfAbsent: true}); err != nil {
		if errors.Is(err, transfer.ErrExists) {
			return nil, fmt.Errorf("a backup %s of node %s already exists (two runs in the same second?): %w", m.ID, m.Node, err)
		}
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	e.opts.Logger.Info("backup complete", "id", m.ID, "files", m.Count(), "raw_bytes", m.RawBytes(),
		"uploaded_objects", res.Uploaded, "uploaded_bytes", res.UploadedBytes, "packs", res.Packs, "reused", res.Reused, "duplicates", res.Duplicates, "unread", res.Unread,
		"manifest", res.ManifestKey)
	return res, nil
}

type inode struct{ dev, ino uint64 }

// linkedInodes finds the inodes that more than one of files shares, with
// a sorted list of 16 bytes a file rather than a map of every inode. (The
// files of a Cassandra table or an HBase region, a group: groups never
// share a file.)
func linkedInodes(files []source.File) map[inode]bool {
	all := make([]inode, 0, len(files))
	for _, f := range files {
		if f.Ino != 0 {
			all = append(all, inode{f.Dev, f.Ino})
		}
	}
	slices.SortFunc(all, func(a, b inode) int { return cmp.Or(cmp.Compare(a.dev, b.dev), cmp.Compare(a.ino, b.ino)) })
	linked := map[inode]bool{}
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			linked[all[i]] = true
		}
	}
	return linked
}

// state shares work between files of one run: hard links are read once and
// equal contents are uploaded once.
type state struct {
	e   *Engine
	mu  sync.Mutex
	res *Result
	// inodes reads a file of several names once: only the inodes several
	// files share (linkedInodes) go through it, which costs a result per
	// file kept for the whole run.
	inodes onceMap[inode, manifest.File]
	// keys shares the storing of a content between files of it in flight
	// at once; a file of a content stored earlier in the run finds it in
	// Known (a million contents would otherwise stay in the map).
	keys  onceMap[string, manifest.File]
	packs *packer // nil: no packing
	// groupBufs holds a group's raw bytes and their encoding between
	// groups (*groupBuf): fresh ones of 128 KiB, zeroed and faulted in,
	// were 4% of a small-files backup's CPU.
	groupBufs sync.Pool
	// sizes holds the sizes of the large files being stored in one pass.
	sizes sizeGate

	touchMu sync.Mutex
	touched map[string]bool // large objects this run uploaded (or continued)
}

// touch notes that this run uploads key, so its partial upload is not
// taken for a stale one.
func (s *state) touch(key string) {
	s.touchMu.Lock()
	defer s.touchMu.Unlock()
	if s.touched == nil {
		s.touched = map[string]bool{}
	}
	s.touched[key] = true
}

func (s *state) file(ctx context.Context, f source.File, linked map[inode]bool) (manifest.File, error) {
	if f.Ino == 0 || !linked[inode{f.Dev, f.Ino}] {
		return s.e.store(ctx, s, f)
	}
	mf, first, err := s.inodes.do(ctx, inode{f.Dev, f.Ino}, func() (manifest.File, error) { return s.e.store(ctx, s, f) })
	if err != nil {
		return manifest.File{}, err
	}
	if !first {
		s.e.opts.Progress.Add(f.Size)
	}
	mf.Path = f.Path
	return mf, nil
}

// storeOnce gives mf (whose SHA256 and Size are set) its stored object:
// one the catalog already has, one this run already stored, or the one
// store describes and uploads now (or packs), returning its stored size.
// key names the content, whether it gets an object of its own or not.
func (s *state) storeOnce(ctx context.Context, mf *manifest.File, key string, store func(*manifest.File) (int64, error)) error {
	if s.storedBefore(mf) {
		return nil
	}
	stored, first, err := s.keys.do(ctx, key, func() (manifest.File, error) {
		var st manifest.File
		n, err := store(&st)
		if err != nil {
			return manifest.File{}, err
		}
		s.count(func(r *Result) { r.Uploaded++; r.UploadedBytes += n })
		return st, nil
	})
	if err != nil {
		return err
	}
	mf.CopyStored(&stored)
	if !first {
		s.count(func(r *Result) { r.Reused++; r.Duplicates++ })
	}
	return nil
}

// storedBefore gives mf (whose SHA256 and Size are set) the stored object
// of its content when the catalog has one.
func (s *state) storedBefore(mf *manifest.File) bool {
	if k := s.e.opts.Known; k == nil || s.e.opts.Full || !k.Content(mf) {
		return false
	}
	s.count(func(r *Result) { r.Reused++ })
	return true
}

func (s *state) count(f func(*Result)) {
	s.mu.Lock()
	f(s.res)
	s.mu.Unlock()
}
