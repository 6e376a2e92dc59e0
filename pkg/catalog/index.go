package catalog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// IndexKey is the index's key relative to a node's root.
const IndexKey = "index.json.zst"

// SummariesKey holds the summaries of the node's complete backups, beside
// the index: what list reads.
const SummariesKey = "backups.json.zst"

const indexSchema = 1

// maxIndexSize bounds the decompressed index read from the bucket.
const maxIndexSize = 1 << 30

// Index is a node's catalog in one object: what contents are stored (so a
// backup decides what to upload with one GET instead of listing millions
// of objects), which file fingerprints they were read from (so unchanged
// files are not even read again), and a summary of every complete backup
// (so list reads one object instead of every manifest).
//
// The manifests stay the truth: the index is rebuilt from them when it is
// missing or unreadable, and only the holder of the node's lock writes it.
type Index struct {
	Schema  int                `json:"schema"`
	Cluster string             `json:"cluster"`
	Node    string             `json:"node"`
	Updated time.Time          `json:"updated"`
	Backups []Summary          `json:"backups"`
	Objects map[string]*Object `json:"objects"` // by content SHA-256
	Hints   map[string]string  `json:"hints"`   // source.File.Fingerprint → SHA-256
	// Partials are large files' unfinished multipart uploads, by key.
	Partials map[string]*Partial `json:"partials,omitempty"`

	mu    sync.Mutex
	dirty bool
	// savedSummaries is the JSON of the summaries last written beside the
	// index (or read with it).
	savedSummaries []byte
}

// Object is one stored content: what a manifest needs to reference it.
type Object struct {
	Key         string           `json:"key"`
	Offset      int64            `json:"off,omitempty"`
	Size        int64            `json:"size"`
	StoredSize  int64            `json:"stored"`
	Compression chunk.Mode       `json:"comp"`
	ChunkSize   int64            `json:"chunk_size,omitempty"`
	Chunks      []manifest.Chunk `json:"chunks,omitempty"`
}

// NewIndex returns an empty index of node.
func NewIndex(node manifest.Node) *Index {
	return &Index{Schema: indexSchema, Cluster: node.Cluster, Node: node.Name,
		Objects: map[string]*Object{}, Hints: map[string]string{}}
}

func objectOf(f *manifest.File) *Object {
	return &Object{Key: f.Key, Offset: f.Offset, Size: f.Size, StoredSize: f.StoredSize, Compression: f.Compression,
		ChunkSize: f.ChunkSize, Chunks: f.Chunks}
}

// fill copies the stored object's description into f.
func (o *Object) fill(f *manifest.File, sha string) {
	f.SHA256, f.Key, f.Offset, f.StoredSize, f.Compression = sha, o.Key, o.Offset, o.StoredSize, o.Compression
	f.ChunkSize, f.Chunks = o.ChunkSize, o.Chunks
}

// Lookup finds a file by fingerprint and, when its content is stored, fills
// in everything of f but the path, time and mode.
func (x *Index) Lookup(fingerprint string, f *manifest.File) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	sha, ok := x.Hints[fingerprint]
	if !ok {
		return false
	}
	o, ok := x.Objects[sha]
	if !ok || o.Size != f.Size {
		return false
	}
	o.fill(f, sha)
	return true
}

// Content fills in f's stored object when a content of its SHA-256 and
// size is stored.
func (x *Index) Content(f *manifest.File) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	o, ok := x.Objects[f.SHA256]
	if !ok || o.Size != f.Size {
		return false
	}
	o.fill(f, f.SHA256)
	return true
}

// Record notes that f's content is stored and was read from a file with
// this fingerprint.
func (x *Index) Record(fingerprint string, f *manifest.File) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.Objects[f.SHA256] = objectOf(f)
	if fingerprint != "" {
		x.Hints[fingerprint] = f.SHA256
	}
	x.dirty = true
}

// AddBackup records a complete backup: its summary and its objects.
func (x *Index) AddBackup(m *manifest.Manifest) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(m)
	sortByID(x.Backups)
	x.dirty = true
}

func (x *Index) addLocked(m *manifest.Manifest) {
	x.Backups = slices.DeleteFunc(x.Backups, func(s Summary) bool { return s.ID == m.ID })
	x.Backups = append(x.Backups, summarize(m))
	for i := range m.Files {
		f := &m.Files[i]
		if _, ok := x.Objects[f.SHA256]; !ok {
			x.Objects[f.SHA256] = objectOf(f)
		}
	}
}

// Forget drops deleted backups and objects, and the hints that led to them.
func (x *Index) Forget(ids, keys []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	gone := make(map[string]bool, len(ids)+len(keys))
	for _, s := range append(slices.Clone(ids), keys...) {
		gone[s] = true
	}
	x.Backups = slices.DeleteFunc(x.Backups, func(s Summary) bool { return gone[s.ID] })
	for sha, o := range x.Objects {
		if gone[o.Key] {
			delete(x.Objects, sha)
		}
	}
	for fp, sha := range x.Hints {
		if _, ok := x.Objects[sha]; !ok {
			delete(x.Hints, fp)
		}
	}
	x.dirty = true
}

// sortByID orders summaries oldest first: ids sort as their times do.
func sortByID(s []Summary) {
	slices.SortFunc(s, func(a, b Summary) int { return cmp.Compare(a.ID, b.ID) })
}

// Summaries returns the summaries of the complete backups, oldest first.
func (x *Index) Summaries() []Summary {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.Backups)
}

// Len is the number of stored contents the index knows.
func (x *Index) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.Objects)
}

// LoadIndex reads the node's index. A missing index is ErrNotFound; one
// that does not decode or validate is an error naming the object, which
// callers answer by rebuilding it from the manifests.
func LoadIndex(ctx context.Context, c *transfer.Client, node manifest.Node) (*Index, error) {
	key := node.Root() + IndexKey
	b, err := c.GetBytes(ctx, key, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	x, err := decodeIndex(b)
	if err != nil {
		return nil, fmt.Errorf("index s3://%s/%s: %w", c.Bucket, key, err)
	}
	if x.Cluster != node.Cluster || x.Node != node.Name {
		return nil, fmt.Errorf("index s3://%s/%s says it is the index of %s/%s", c.Bucket, key, x.Cluster, x.Node)
	}
	return x, nil
}

func decodeIndex(b []byte) (*Index, error) {
	raw, err := chunk.Inflate(b, maxIndexSize)
	if err != nil {
		return nil, err
	}
	var x Index
	if err := json.Unmarshal(raw, &x); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if x.Schema != indexSchema {
		return nil, fmt.Errorf("schema %d is not %d", x.Schema, indexSchema)
	}
	return &x, x.validate()
}

// validate checks an index from the bucket as strictly as a manifest: a
// backup copies its entries into the manifest it writes.
func (x *Index) validate() error {
	if x.Objects == nil {
		x.Objects = map[string]*Object{}
	}
	if x.Hints == nil {
		x.Hints = map[string]string{}
	}
	for sha, o := range x.Objects {
		if o == nil {
			return fmt.Errorf("object %s: empty entry", sha)
		}
		f := manifest.File{Path: "x", Size: o.Size, SHA256: sha}
		o.fill(&f, sha)
		if err := f.Validate(); err != nil {
			return fmt.Errorf("object %s: %w", sha, err)
		}
	}
	for _, s := range x.Backups {
		if err := manifest.CheckName("backup id", s.ID); err != nil {
			return err
		}
	}
	for key, p := range x.Partials {
		if p == nil || p.Key != key {
			return fmt.Errorf("partial upload %s: entry under another key", key)
		}
		if err := p.check(); err != nil {
			return err
		}
	}
	return nil
}

// Dirty reports whether the index changed since it was loaded or saved.
func (x *Index) Dirty() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.dirty
}

// SaveIndex writes the index if anything changed since it was loaded or
// last saved. Only the holder of the node's lock may call it.
func SaveIndex(ctx context.Context, c *transfer.Client, node manifest.Node, x *Index) error {
	x.mu.Lock()
	if !x.dirty {
		x.mu.Unlock()
		return nil
	}
	x.Updated = time.Now().UTC()
	b, err := x.encodeLocked()
	x.dirty = false
	x.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.PutBytes(ctx, node.Root()+IndexKey, b, "application/zstd"); err != nil {
		x.mu.Lock()
		x.dirty = true
		x.mu.Unlock()
		return fmt.Errorf("write index: %w", err)
	}
	return x.saveSummaries(ctx, c, node)
}

// RebuildIndex makes a node's index from its manifests: every complete
// backup's summary and objects. Hints are lost, so the next backup reads
// its files once more (and uploads nothing that is stored).
func RebuildIndex(ctx context.Context, c *transfer.Client, node manifest.Node) (*Index, error) {
	ids, err := IDs(ctx, c, node)
	if err != nil {
		return nil, err
	}
	x := NewIndex(node)
	err = EachManifest(ctx, c, node, ids, func(m *manifest.Manifest) {
		x.mu.Lock()
		x.addLocked(m)
		x.mu.Unlock()
	})
	if err != nil {
		return nil, err
	}
	sortByID(x.Backups)
	x.dirty = true
	return x, nil
}

// Rebuild rebuilds the node's index from its manifests under the node's
// lock, keeping the fingerprints of the old index (when it can be read)
// for the contents that are still stored, and saves it. It is what
// `s3bak index rebuild` does.
func Rebuild(ctx context.Context, c *transfer.Client, node manifest.Node, o lock.Options) (*Index, error) {
	var x *Index
	err := lock.Run(ctx, c, node.Root()+lock.Key, lock.Info{Op: "index rebuild"}, o,
		func(ctx context.Context, l *lock.Lock) (err error) {
			if x, err = RebuildIndex(ctx, c, node); err != nil {
				return fmt.Errorf("rebuild index: %w", err)
			}
			if old, err := LoadIndex(ctx, c, node); err == nil {
				x.KeepHints(old)
			}
			if err := l.Fence(ctx); err != nil {
				return err
			}
			return SaveIndex(ctx, c, node, x)
		})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// OpenIndex loads the node's index, or rebuilds it from the manifests when
// it is missing or damaged (the caller holds the lock and saves it).
func OpenIndex(ctx context.Context, c *transfer.Client, node manifest.Node, warn func(msg string, args ...any)) (*Index, error) {
	x, err := LoadIndex(ctx, c, node)
	if err == nil {
		return x, nil
	}
	if !errors.Is(err, transfer.ErrNotFound) {
		warn("the node's index is damaged: rebuilding it from the manifests", "err", err)
	}
	return RebuildIndex(ctx, c, node)
}

// KeepHints carries over old's fingerprints of contents x still has, so a
// rebuild does not make the next backup read every file again.
func (x *Index) KeepHints(old *Index) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for fp, sha := range old.Hints {
		if _, ok := x.Objects[sha]; ok {
			x.Hints[fp] = sha
		}
	}
	x.dirty = true
}
