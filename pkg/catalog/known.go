package catalog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Known is what a backup knows is stored before it reads a file: the
// records of the node's newest complete backup (its parent), of the
// checkpoints of runs that were killed before their manifest, and of the
// files this run stored so far. A file whose fingerprint a record has is
// not read; a content a record has is not uploaded.
//
// The manifests stay the truth and nothing else is needed: a fresh host,
// or a bucket whose checkpoints are gone, reads more and uploads nothing
// more. The records wait on local disk (TMPDIR) and are looked up through
// tables of 16 bytes a record, so a million-file node costs some 32 MB of
// memory, not the gigabyte a map of every content ever stored did; and a
// content no kept backup references is forgotten with its backups.
//
// Only the holder of the node's lock opens one: it writes checkpoints.
type Known struct {
	c    *transfer.Client
	node manifest.Node
	id   string // this run's backup id: its checkpoints' names
	log  *slog.Logger

	base *records // parent and checkpoints: sealed at open
	run  *records // this run's

	mu       sync.Mutex
	lost     map[string]bool // keys base records reference that are not stored as recorded
	saved    int64           // bytes of run records already in checkpoints
	seq      int
	loaded   []string // checkpoint keys read at open
	written  []string // checkpoint keys this run wrote
	partials map[string]*Partial
	pdirty   bool
	Lost     []Lost // what open found missing, for the run's warning
	Parent   string // the parent's backup id, "" for none
}

// KnownOptions configure OpenKnown.
type KnownOptions struct {
	ID     string // the run's backup id
	Dir    string // for the records' temporary files ("" is TMPDIR)
	Logger *slog.Logger
}

// OpenKnown reads what the node has stored: its newest backup's manifest,
// the checkpoints of killed runs and the unfinished uploads of large
// files, and lists data/ to forget whatever of it is no longer stored.
func OpenKnown(ctx context.Context, c *transfer.Client, node manifest.Node, o KnownOptions) (k *Known, err error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	k = &Known{c: c, node: node, id: o.ID, log: o.Logger, partials: map[string]*Partial{}}
	defer func() {
		if err != nil {
			k.Close()
		}
	}()
	if k.base, err = newRecords(o.Dir); err != nil {
		return nil, err
	}
	if k.run, err = newLiveRecords(o.Dir); err != nil {
		return nil, err
	}
	// The checkpoints' listing and the partial uploads do not wait for the
	// parent (a round trip or two each on S3); the records are added in
	// order, the parent's first.
	var checkpoints []string
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		checkpoints, err = CheckpointKeys(gctx, c, node)
		if err != nil {
			err = fmt.Errorf("list checkpoints: %w", err)
		}
		return err
	})
	g.Go(func() error { return k.readPartials(gctx) })
	want := map[string]expected{}
	if err := k.readParent(gctx, want); err != nil {
		g.Wait()
		return nil, err
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := k.readCheckpoints(ctx, checkpoints, want); err != nil {
		return nil, err
	}
	if err := k.base.seal(); err != nil {
		return nil, err
	}
	if k.Lost, err = reconcile(ctx, c, node, want); err != nil {
		return nil, err
	}
	k.lost = map[string]bool{}
	for _, l := range k.Lost {
		k.lost[l.Key] = true
	}
	return k, nil
}

// readParent adds the newest complete backup's records.
func (k *Known) readParent(ctx context.Context, want map[string]expected) error {
	ids, err := IDs(ctx, k.c, k.node)
	if err != nil || len(ids) == 0 {
		return err
	}
	k.Parent = ids[len(ids)-1]
	return Stream(ctx, k.c, k.node, k.Parent, func(_ *manifest.Manifest, f *manifest.File) error {
		expect(want, f)
		return k.base.add(f, fingerprint(f))
	})
}

// readCheckpoints adds the records of killed runs' checkpoints. They are a
// cache: one that cannot be read is skipped with a warning, and its files
// are read again.
func (k *Known) readCheckpoints(ctx context.Context, keys []string, want map[string]expected) error {
	for _, key := range keys {
		if _, ok := manifest.CheckpointID(key); !ok {
			continue // partials.json
		}
		if err := k.readCheckpoint(ctx, key, want); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			k.log.Warn("skipping a checkpoint that cannot be read: the files it recorded are read again", "key", key, "err", err)
			continue
		}
		k.loaded = append(k.loaded, key)
	}
	return nil
}

func (k *Known) readCheckpoint(ctx context.Context, key string, want map[string]expected) error {
	body, err := k.c.Get(ctx, key, 0, 0)
	if err != nil {
		return err
	}
	defer body.Close()
	dec, err := chunk.NewCatalogReader(body)
	if err != nil {
		return err
	}
	defer dec.Close()
	var files []manifest.File // one checkpoint's worth: validated whole before any is used
	sc := bufio.NewScanner(dec)
	sc.Buffer(nil, manifest.MaxRecordSize)
	for sc.Scan() {
		f, err := manifest.ParseRecord(sc.Bytes())
		if err != nil {
			return fmt.Errorf("record %d: %w", len(files)+1, err)
		}
		files = append(files, f)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	for i := range files {
		expect(want, &files[i])
		if err := k.base.add(&files[i], fingerprint(&files[i])); err != nil {
			return err
		}
	}
	return nil
}

func (k *Known) readPartials(ctx context.Context) error {
	ps, err := LoadPartials(ctx, k.c, k.node)
	var bad *damagedError
	switch {
	case errors.As(err, &bad):
		k.log.Warn("ignoring unreadable partial uploads: their files start over", "err", err)
	case err != nil:
		return err
	}
	for key, p := range ps {
		if p == nil || p.Key != key || p.check() != nil {
			k.log.Warn("ignoring a damaged partial upload: its file starts over", "key", key)
			continue
		}
		k.partials[key] = p
	}
	return nil
}

// damagedError is a cache object that cannot be read.
type damagedError struct{ err error }

func (e *damagedError) Error() string { return e.err.Error() }
func (e *damagedError) Unwrap() error { return e.err }

// LoadPartials reads the node's recorded partial uploads, by key; none
// when there are none.
func LoadPartials(ctx context.Context, c *transfer.Client, node manifest.Node) (map[string]*Partial, error) {
	key := node.Root() + manifest.PartialsKey
	b, err := c.GetBytes(ctx, key, MaxManifestSize)
	if errors.Is(err, transfer.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ps map[string]*Partial
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, &damagedError{fmt.Errorf("s3://%s/%s: %w", c.Bucket, key, err)}
	}
	return ps, nil
}

// expect notes the object f needs and the least size it must have.
func expect(want map[string]expected, f *manifest.File) {
	e := expected{key: f.Key, size: f.StoredSize, pack: manifest.IsPackKey(f.Key)}
	if e.pack {
		e.size = f.Offset + f.StoredSize
	}
	if prev, ok := want[f.Key]; ok {
		e.size = max(e.size, prev.size)
	}
	want[f.Key] = e
}

// stored reports whether f's object is in the bucket as recorded.
func (k *Known) stored(f *manifest.File) bool { return !k.lost[f.Key] }

// Lookup fills f's stored object from the record of an unchanged file
// with this fingerprint.
func (k *Known) Lookup(fp string, f *manifest.File) bool {
	r, ok := k.base.byFingerprint(fp)
	if !ok || r.Size != f.Size || !k.stored(&r) {
		return false
	}
	f.SHA256 = r.SHA256
	f.CopyStored(&r)
	return true
}

// Content fills f's stored object when a content of its SHA-256 and size
// is stored.
func (k *Known) Content(f *manifest.File) bool {
	k.mu.Lock()
	r, ok := k.run.byContent(f.SHA256, f.Size)
	k.mu.Unlock()
	if !ok {
		if r, ok = k.base.byContent(f.SHA256, f.Size); !ok || !k.stored(&r) {
			return false
		}
	}
	f.SHA256 = r.SHA256
	f.CopyStored(&r)
	return true
}

// HasSize reports whether a stored content may have exactly size bytes:
// true whenever it cannot tell (sizes below LargeContent are not kept). A
// file of a size no stored content has cannot be a duplicate, so the
// backup may store it without hashing it first.
func (k *Known) HasSize(size int64) bool {
	if size < LargeContent || k.base.hasSize(size) {
		return true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.run.hasSize(size)
}

// Record notes that f's content is stored (durably: its pack or object is
// complete), read from a file with this fingerprint.
func (k *Known) Record(fp string, f *manifest.File) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.run.add(f, fp); err != nil {
		k.log.Warn("could not note a stored file for the checkpoint", "path", f.Path, "err", err)
	}
}

// Memory is what the lookup tables hold.
func (k *Known) Memory() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.base.memory() + k.run.memory()
}

// Dirty reports whether a checkpoint has something to save.
func (k *Known) Dirty() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.run.size > k.saved || k.pdirty
}

// Save writes a checkpoint: the records of the files stored since the
// last one, and the partial uploads when they changed. Only the holder of
// the node's lock may call it.
func (k *Known) Save(ctx context.Context) error {
	k.mu.Lock()
	if err := k.run.flush(); err != nil {
		k.mu.Unlock()
		return fmt.Errorf("write the catalog's temporary file: %w", err)
	}
	from, to := k.saved, k.run.size
	seq := k.seq
	k.mu.Unlock()
	if to > from {
		key := manifest.CheckpointKey(k.id, seq)
		if err := k.putRecords(ctx, key, from, to); err != nil {
			return fmt.Errorf("write checkpoint %s: %w", key, err)
		}
		k.mu.Lock()
		k.saved, k.seq = to, seq+1
		k.written = append(k.written, k.node.Root()+key)
		k.mu.Unlock()
	}
	return k.SavePartials(ctx)
}

// SavePartials writes the partial uploads when they changed: all a
// complete backup needs to save, its manifest holding its records.
func (k *Known) SavePartials(ctx context.Context) error {
	k.mu.Lock()
	var partials []byte
	if k.pdirty {
		partials, _ = json.Marshal(k.partials)
		if len(k.partials) == 0 {
			partials = nil
		}
	}
	pdirty := k.pdirty
	k.mu.Unlock()
	if pdirty {
		key := k.node.Root() + manifest.PartialsKey
		var err error
		if partials == nil {
			err = k.c.Delete(ctx, key)
		} else {
			err = k.c.PutBytes(ctx, key, partials, "application/json")
		}
		if err != nil {
			return fmt.Errorf("write partial uploads: %w", err)
		}
		k.mu.Lock()
		k.pdirty = false
		k.mu.Unlock()
	}
	return nil
}

// putRecords stores the run's record bytes [from, to) compressed under key.
func (k *Known) putRecords(ctx context.Context, key string, from, to int64) error {
	var b bytes.Buffer
	zw, err := chunk.NewCatalogWriter(&b)
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, io.NewSectionReader(k.run.f, from, to-from)); err != nil {
		zw.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return k.c.PutBytes(ctx, k.node.Root()+key, b.Bytes(), "application/zstd")
}

// Done removes the checkpoints of this run and of the runs it took over:
// its manifest now references everything they recorded that its snapshot
// still has.
func (k *Known) Done(ctx context.Context) {
	k.mu.Lock()
	keys := slices.Concat(k.loaded, k.written)
	k.mu.Unlock()
	// A long backup leaves thousands: a request per thousand keys.
	if err := k.c.DeleteMany(ctx, keys, 4); err != nil {
		k.log.Warn("could not remove the checkpoints (the next backup or purge does)", "checkpoints", len(keys), "err", err)
	}
}

// Close releases the temporary files.
func (k *Known) Close() {
	k.base.close()
	k.run.close()
}

// Partial returns the recorded partial upload of key, if any.
func (k *Known) Partial(key string) *Partial {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.partials[key].clone()
}

// PartialOf returns the recorded partial upload, under a key not named by
// its content, of the file with fingerprint fp, if any.
func (k *Known) PartialOf(fp string) *Partial {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.partials {
		if p.Fingerprint == fp {
			return p.clone()
		}
	}
	return nil
}

func (p *Partial) clone() *Partial {
	if p == nil {
		return nil
	}
	c := *p
	c.Chunks, c.Parts = slices.Clone(p.Chunks), slices.Clone(p.Parts)
	return &c
}

// SetPartial records (or replaces) a partial upload; the next checkpoint
// saves it.
func (k *Known) SetPartial(p *Partial) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.partials[p.Key] = p.clone()
	k.pdirty = true
}

// DropPartial forgets the partial upload of key.
func (k *Known) DropPartial(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.partials[key]; ok {
		delete(k.partials, key)
		k.pdirty = true
	}
}

// PartialUploads are the upload ids of the recorded partial uploads.
func (k *Known) PartialUploads() map[string]bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]bool{}
	for _, p := range k.partials {
		out[p.UploadID] = true
	}
	return out
}

// PartialKeys are the keys of the recorded partial uploads, sorted.
func (k *Known) PartialKeys() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Sorted(maps.Keys(k.partials))
}

// CheckpointKeys lists the node's checkpoint objects (full keys).
func CheckpointKeys(ctx context.Context, c *transfer.Client, node manifest.Node) ([]string, error) {
	var keys []string
	for o, err := range c.List(ctx, node.Root()+manifest.CheckpointsDir+"/") {
		if err != nil {
			return nil, err
		}
		if _, ok := manifest.CheckpointID(o.Key); ok || strings.HasSuffix(o.Key, "/"+path.Base(manifest.PartialsKey)) {
			keys = append(keys, o.Key)
		}
	}
	return keys, nil
}
