package catalog

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// reconcileLists is how many prefixes of data/ are listed at once: the
// keys spread over 256 two-hex-digit directories, and one LIST per
// directory at a time would take a million-object node a thousand
// sequential requests.
const reconcileLists = 16

// Lost is an object the index offered that is not in the bucket as
// recorded.
type Lost struct {
	Key string
	Why string
}

// Reconcile lists the node's data/ and forgets every content whose object
// is missing or shorter than the index records, so that a backup never
// references an object that is not there: a lifecycle rule, a person or a
// bug may delete an object, and the index would otherwise offer it to
// every later backup while the file is still on disk. The forgotten
// contents are read and uploaded again by the backup that follows. It
// costs one LIST request per 1,000 objects, 16 at a time, and memory for a
// sorted list of the index's keys.
func (x *Index) Reconcile(ctx context.Context, c *transfer.Client, node manifest.Node) ([]Lost, error) {
	want := x.expectedObjects()
	dirs := make([]string, 0, len(want))
	for d := range want {
		dirs = append(dirs, d)
	}
	lost := make([][]Lost, len(dirs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reconcileLists)
	for i, dir := range dirs {
		g.Go(func() (err error) {
			lost[i], err = missingIn(gctx, c, node.Root(), dir+"/", want[dir])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list the node's stored objects: %w", err)
	}
	all := slices.Concat(lost...)
	if len(all) > 0 {
		keys := make([]string, len(all))
		for i, l := range all {
			keys[i] = l.Key
		}
		x.Forget(nil, keys) // backup summaries stay: verify reports what they lost
	}
	return all, nil
}

// expected is an object the index offers and the least size it must have.
type expected struct {
	key  string
	size int64
	pack bool
}

// expectedObjects groups the index's objects by directory, each group
// sorted by key as a listing returns them.
func (x *Index) expectedObjects() map[string][]expected {
	x.mu.Lock()
	defer x.mu.Unlock()
	byKey := map[string]expected{}
	for _, o := range x.Objects {
		e := expected{key: o.Key, size: o.StoredSize, pack: manifest.IsPackKey(o.Key)}
		if e.pack {
			e.size = o.Offset + o.StoredSize
		}
		if prev, ok := byKey[o.Key]; ok {
			e.size = max(e.size, prev.size)
		}
		byKey[o.Key] = e
	}
	out := map[string][]expected{}
	for _, e := range byKey {
		d := path.Dir(e.key)
		out[d] = append(out[d], e)
	}
	for _, es := range out {
		slices.SortFunc(es, func(a, b expected) int { return strings.Compare(a.key, b.key) })
	}
	return out
}

// missingIn walks the listing of dir (under the node's root) beside want
// (both sorted) and returns what want has that the listing lacks or holds
// too short.
func missingIn(ctx context.Context, c *transfer.Client, root, dir string, want []expected) ([]Lost, error) {
	var lost []Lost
	i := 0
	for o, err := range c.List(ctx, root+dir) {
		if err != nil {
			return nil, err
		}
		key := strings.TrimPrefix(o.Key, root)
		for i < len(want) && want[i].key < key {
			lost = append(lost, Lost{want[i].key, "missing"})
			i++
		}
		if i < len(want) && want[i].key == key {
			if w := want[i]; (w.pack && o.Size < w.size) || (!w.pack && o.Size != w.size) {
				lost = append(lost, Lost{w.key, fmt.Sprintf("%d bytes, the index records %d", o.Size, w.size)})
			}
			i++
		}
	}
	for ; i < len(want); i++ {
		lost = append(lost, Lost{want[i].key, "missing"})
	}
	return lost, nil
}
