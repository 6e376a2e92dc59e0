package catalog

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Audit is a node's catalog checked against its bucket: what is stored but
// referenced by no backup (orphans: money spent for nothing, normally from
// interrupted backups, removed by purge), what a backup references but is
// gone (a backup that cannot be restored), and the multipart uploads that
// never finished (billed, and invisible in object listings).
type Audit struct {
	Backups     int                   `json:"backups"`
	Objects     int                   `json:"objects"`
	Orphans     []transfer.ObjectInfo `json:"orphans"`
	OrphanBytes int64                 `json:"orphan_bytes"`
	Missing     map[string][]string   `json:"missing"` // backup id → missing object keys
	Uploads     []transfer.Upload     `json:"unfinished_uploads"`
}

// References reads the manifests ids of node, file by file, and maps
// every object key (the full key in the bucket) they use to the backups
// that use it: memory for each object, not for each file.
func References(ctx context.Context, c *transfer.Client, node manifest.Node, ids []string) (map[string][]string, error) {
	refs := map[string][]string{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, id := range ids {
		g.Go(func() error {
			keys := map[string]bool{} // this backup's: packs hold thousands of its files
			err := Stream(gctx, c, node, id, func(_ *manifest.Manifest, f *manifest.File) error {
				keys[f.Key] = true
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			for k := range keys {
				refs[node.Root()+k] = append(refs[node.Root()+k], id)
			}
			return err
		})
	}
	return refs, g.Wait()
}

// AuditNode reads every manifest of the node and lists its objects and
// unfinished uploads.
func AuditNode(ctx context.Context, c *transfer.Client, node manifest.Node) (*Audit, error) {
	ids, err := IDs(ctx, c, node)
	if err != nil {
		return nil, err
	}
	a := &Audit{Backups: len(ids), Missing: map[string][]string{}}
	refs, err := References(ctx, c, node, ids)
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for o, err := range c.List(ctx, node.Root()+manifest.DataDir+"/") {
		if err != nil {
			return nil, err
		}
		a.Objects++
		present[o.Key] = true
		if _, ok := refs[o.Key]; !ok {
			a.Orphans = append(a.Orphans, o)
			a.OrphanBytes += o.Size
		}
	}
	for k, ids := range refs {
		if present[k] {
			continue
		}
		for _, id := range ids {
			a.Missing[id] = append(a.Missing[id], k)
		}
	}
	for u, err := range c.ListUploads(ctx, node.Root()) {
		if err != nil {
			return nil, err
		}
		a.Uploads = append(a.Uploads, u)
	}
	return a, nil
}
