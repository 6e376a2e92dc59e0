// Package catalog finds the backups in the bucket: which nodes a cluster
// has, which backups a node has, and their manifests.
package catalog

import (
	"context"
	"errors"
	"fmt"
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

// Load reads and validates one manifest; id "" or "latest" is the newest.
func Load(ctx context.Context, c *transfer.Client, node manifest.Node, id string) (*manifest.Manifest, error) {
	if id == "" || id == "latest" {
		ids, err := IDs(ctx, c, node)
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("%w: node %s of cluster %s has no complete backup under s3://%s/%s", ErrNoBackup, node.Name, node.Cluster, c.Bucket, node.Root())
		}
		id = ids[len(ids)-1]
	}
	if err := manifest.CheckName("backup id", id); err != nil {
		return nil, err
	}
	key := node.Root() + manifest.ManifestKey(id)
	b, err := c.GetBytes(ctx, key, MaxManifestSize)
	if errors.Is(err, transfer.ErrNotFound) {
		return nil, fmt.Errorf("%w: backup %s of node %s (run `s3bak list` to see the backups)", ErrNoBackup, id, node.Name)
	}
	if err != nil {
		return nil, err
	}
	m, err := manifest.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("s3://%s/%s: %w", c.Bucket, key, err)
	}
	if m.ID != id || m.Cluster != node.Cluster || m.Node != node.Name {
		return nil, fmt.Errorf("s3://%s/%s: manifest says it is backup %s of %s/%s", c.Bucket, key, m.ID, m.Cluster, m.Node)
	}
	return m, nil
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
		Files: len(m.Files), RawBytes: m.RawBytes(), StoredBytes: m.StoredBytes()}
	if t, ok := cassandra.TopologyFromMeta(m.Meta); ok {
		s.Topology = &Topology{ClusterName: t.ClusterName, DC: t.DC, Rack: t.Rack, HostID: t.HostID,
			ListenAddress: t.ListenAddress, Version: t.Version, Tokens: len(t.Tokens)}
	}
	return s
}

// EachManifest loads the manifests ids of node, 16 at a time, and hands each
// to fn (which must be safe for concurrent use).
func EachManifest(ctx context.Context, c *transfer.Client, node manifest.Node, ids []string, fn func(*manifest.Manifest)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, id := range ids {
		g.Go(func() error {
			m, err := Load(gctx, c, node, id)
			if err != nil {
				return err
			}
			fn(m)
			return nil
		})
	}
	return g.Wait()
}
