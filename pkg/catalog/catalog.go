// Package catalog finds the backups in the bucket: which nodes a cluster
// has, which backups a node has, and their manifests.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

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

// Summary is one line of `s3bak list`.
type Summary struct {
	Cluster     string    `json:"cluster"`
	Node        string    `json:"node"`
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	Tag         string    `json:"tag"`
	Time        time.Time `json:"time"`
	Files       int       `json:"files"`
	RawBytes    int64     `json:"raw_bytes"`
	StoredBytes int64     `json:"stored_bytes"`
}

// List summarises every backup of the given nodes, reading manifests in
// parallel.
func List(ctx context.Context, c *transfer.Client, nodes []manifest.Node) ([]Summary, error) {
	type job struct {
		node manifest.Node
		id   string
	}
	var jobs []job
	for _, n := range nodes {
		ids, err := IDs(ctx, c, n)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			jobs = append(jobs, job{n, id})
		}
	}
	out := make([]Summary, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, j := range jobs {
		g.Go(func() error {
			m, err := Load(gctx, c, j.node, j.id)
			if err != nil {
				return err
			}
			out[i] = Summary{Cluster: m.Cluster, Node: m.Node, ID: m.ID, Kind: m.Kind, Tag: m.Tag, Time: m.Finished,
				Files: len(m.Files), RawBytes: m.RawBytes(), StoredBytes: m.StoredBytes()}
			return nil
		})
	}
	return out, g.Wait()
}

// NodeOf is the manifest.Node of another node of the same cluster.
func NodeOf(n manifest.Node, name string) manifest.Node {
	n.Name = path.Base(name)
	return n
}
