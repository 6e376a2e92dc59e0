// Package catalog finds the backups in the bucket: which nodes a cluster
// has, which backups a node has, and their manifests.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// MaxManifestSize bounds what is read as a manifest (about a million files).
const MaxManifestSize = 512 << 20

// ErrNoBackup means the node has no complete backup (or not the one named).
var ErrNoBackup = errors.New("no such backup")

// IDs lists the ids of the node's complete backups, oldest first. A backup
// without its manifest is not complete and does not appear.
func IDs(ctx context.Context, c *transfer.Client, node manifest.Node) ([]string, error) {
	var ids []string
	for o, err := range c.List(ctx, node.Root()+manifest.BackupsDir+"/") {
		if err != nil {
			return nil, err
		}
		if id, ok := manifest.IDFromKey(o.Key); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Load reads and validates one manifest whole; id "" or "latest" is the
// newest. A big node's manifest is better read file by file (Open).
func Load(ctx context.Context, c *transfer.Client, node manifest.Node, id string) (*manifest.Manifest, error) {
	r, err := Open(ctx, c, node, id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	m, err := r.ReadAll()
	if err != nil {
		return nil, r.wrap(err)
	}
	return m, nil
}

// ManifestReader reads one stored manifest file by file, straight from
// its GET: a million-file manifest is never whole in memory.
type ManifestReader struct {
	*manifest.Reader
	body io.Closer
	name string // s3://bucket/key, for errors
}

// Open opens backup id's manifest (id "" or "latest": the newest) and
// reads its header, checking that it is the backup of node it is stored
// as. Damage is an error wrapping manifest.ErrCorrupt, naming the object.
func Open(ctx context.Context, c *transfer.Client, node manifest.Node, id string) (*ManifestReader, error) {
	id, err := resolveID(ctx, c, node, id)
	if err != nil {
		return nil, err
	}
	key := node.Root() + manifest.ManifestKey(id)
	body, err := c.Get(ctx, key, 0, 0)
	if errors.Is(err, transfer.ErrNotFound) {
		return nil, fmt.Errorf("%w: backup %s of node %s (run `s3bak list` to see the backups)", ErrNoBackup, id, node.Name)
	}
	if err != nil {
		return nil, err
	}
	r := &ManifestReader{body: body, name: fmt.Sprintf("s3://%s/%s", c.Bucket, key)}
	if r.Reader, err = manifest.NewReader(body); err != nil {
		body.Close()
		return nil, r.wrap(err)
	}
	if m := r.Manifest(); m.ID != id || m.Cluster != node.Cluster || m.Node != node.Name {
		r.Close()
		return nil, fmt.Errorf("%s: %w: it says it is backup %s of %s/%s", r.name, manifest.ErrCorrupt, m.ID, m.Cluster, m.Node)
	}
	return r, nil
}

func resolveID(ctx context.Context, c *transfer.Client, node manifest.Node, id string) (string, error) {
	if id == "" || id == "latest" {
		ids, err := IDs(ctx, c, node)
		if err != nil {
			return "", err
		}
		if len(ids) == 0 {
			return "", fmt.Errorf("%w: node %s of cluster %s has no complete backup under s3://%s/%s", ErrNoBackup, node.Name, node.Cluster, c.Bucket, node.Root())
		}
		id = ids[len(ids)-1]
	}
	return id, manifest.CheckName("backup id", id)
}

func (r *ManifestReader) wrap(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return fmt.Errorf("%s: %w", r.name, err)
}

// Next returns the next file, or io.EOF after the last; errors name the
// object.
func (r *ManifestReader) Next() (manifest.File, error) {
	f, err := r.Reader.Next()
	return f, r.wrap(err)
}

// Close stops reading.
func (r *ManifestReader) Close() {
	if r.Reader != nil {
		r.Reader.Close()
	}
	r.body.Close()
}

// Stream calls fn with each file of backup id, in path order, and the
// manifest's header.
func Stream(ctx context.Context, c *transfer.Client, node manifest.Node, id string, fn func(m *manifest.Manifest, f *manifest.File) error) error {
	r, err := Open(ctx, c, node, id)
	if err != nil {
		return err
	}
	defer r.Close()
	m := r.Manifest()
	for {
		f, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(m, &f); err != nil {
			return err
		}
	}
}

// LoadHeader reads backup id's manifest header: what it is, and its
// totals, without its files (an older manifest is read whole).
func LoadHeader(ctx context.Context, c *transfer.Client, node manifest.Node, id string) (*manifest.Manifest, error) {
	r, err := Open(ctx, c, node, id)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Manifest(), nil
}

// Nodes lists the node names that have anything under the cluster.
func Nodes(ctx context.Context, c *transfer.Client, node manifest.Node) ([]string, error) {
	var names []string
	root := node.ClusterRoot()
	for dir, err := range c.ListDirs(ctx, root) {
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(dir, root), "/")
		if manifest.CheckName("node", name) == nil {
			names = append(names, name)
		}
	}
	return names, nil
}

// summarize makes a manifest's line of `s3bak list`.
func summarize(m *manifest.Manifest) Summary {
	s := Summary{Cluster: m.Cluster, Node: m.Node, ID: m.ID, Kind: m.Kind, Tag: m.Tag, Time: m.Finished,
		Files: int(m.Count()), RawBytes: m.RawBytes(), StoredBytes: m.StoredBytes()}
	if t, ok := cassandra.TopologyFromMeta(m.Meta); ok {
		s.Topology = &Topology{ClusterName: t.ClusterName, DC: t.DC, Rack: t.Rack, HostID: t.HostID,
			ListenAddress: t.ListenAddress, Version: t.Version, Tokens: len(t.Tokens)}
	}
	return s
}

// EachHeader reads the headers of the manifests ids of node, 16 at a time,
// and hands each to fn (which must be safe for concurrent use).
func EachHeader(ctx context.Context, c *transfer.Client, node manifest.Node, ids []string, fn func(*manifest.Manifest)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, id := range ids {
		g.Go(func() error {
			m, err := LoadHeader(gctx, c, node, id)
			if err != nil {
				return err
			}
			fn(m)
			return nil
		})
	}
	return g.Wait()
}
