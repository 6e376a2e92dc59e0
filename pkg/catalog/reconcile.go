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

// Lost is an object a record offered that is not in the bucket as
// recorded.
type Lost struct {
	Key string
	Why string
}

// reconcile lists the node's data/ and returns what of want is missing
// or shorter than recorded, so that a backup never references an object
// that is not there: a lifecycle rule, a person or a bug may delete an
// object while the file it holds is still on disk. The files of what is
// lost are read and uploaded again. It costs one LIST request per 1,000
// objects, 16 at a time.
func reconcile(ctx context.Context, c *transfer.Client, node manifest.Node, want map[string]expected) ([]Lost, error) {
	byDir := map[string][]expected{}
	for _, e := range want {
		d := path.Dir(e.key)
		byDir[d] = append(byDir[d], e)
	}
	dirs := make([]string, 0, len(byDir))
	for d, es := range byDir {
		slices.SortFunc(es, func(a, b expected) int { return strings.Compare(a.key, b.key) })
		dirs = append(dirs, d)
	}
	lost := make([][]Lost, len(dirs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(reconcileLists)
	for i, dir := range dirs {
		g.Go(func() (err error) {
			lost[i], err = missingIn(gctx, c, node.Root(), dir+"/", byDir[dir])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("list the node's stored objects: %w", err)
	}
	return slices.Concat(lost...), nil
}

// expected is an object a record references and the least size it must
// have.
type expected struct {
	key  string
	size int64
	pack bool
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
				lost = append(lost, Lost{w.key, fmt.Sprintf("%d bytes, a backup records %d", o.Size, w.size)})
			}
			i++
		}
	}
	for ; i < len(want); i++ {
		lost = append(lost, Lost{want[i].key, "missing"})
	}
	return lost, nil
}
