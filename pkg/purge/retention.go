package purge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Retained is what a purge left in place because S3 Object Lock still
// protects it: backups the policy would remove (kept, with the reason) and
// unreferenced objects. It is not an error: the next purge after the
// retention ends takes them.
type Retained struct {
	Backups int   `json:"backups"`
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// First are the first few retained keys (manifests first), for a person
	// to look at.
	First []RetainedKey `json:"first"`
}

// RetainedKey is one object version that is still protected.
type RetainedKey struct {
	Key   string    `json:"key"`
	Mode  string    `json:"mode"`
	Until time.Time `json:"until"`
}

// retainedShown is how many retained keys a report names.
const retainedShown = 5

func (r *Retained) add(key string, ret transfer.ObjectRetention) {
	if len(r.First) < retainedShown {
		r.First = append(r.First, RetainedKey{Key: key, Mode: ret.Mode, Until: ret.Until})
	}
}

// versions lists every version of the objects under prefix, by key: on an
// Object Lock bucket a purge deletes exactly these versions, so that no
// delete marker hides anything, and leaves a key alone while any of its
// versions is retained.
func (p *purger) versions(ctx context.Context, prefix string) (map[string][]transfer.Version, error) {
	out := map[string][]transfer.Version{}
	for v, err := range p.c.ListVersions(ctx, prefix) {
		if err != nil {
			return nil, fmt.Errorf("list the versions under %s (an Object Lock bucket keeps every version): %w", prefix, err)
		}
		out[v.Key] = append(out[v.Key], v)
	}
	return out, nil
}

// protection is the retention, among key's versions, that still protects
// one of them at now (the zero value when none does).
func (p *purger) protection(ctx context.Context, versions []transfer.Version, now time.Time) (transfer.ObjectRetention, error) {
	var longest transfer.ObjectRetention
	for _, v := range versions {
		if v.DeleteMarker {
			continue // a marker holds no data and takes no retention
		}
		r, err := p.c.GetRetention(ctx, v.Key, v.VersionID)
		if err != nil {
			return longest, fmt.Errorf("read the retention of %s before deleting it: %w", v.Key, err)
		}
		if r.Protects(now) && r.Until.After(longest.Until) {
			longest = r
		}
	}
	return longest, nil
}

// protections checks keys a few at once and returns the retained ones.
func (p *purger) protections(ctx context.Context, keys []string, versions map[string][]transfer.Version) (map[string]transfer.ObjectRetention, error) {
	now := p.o.Now()
	var mu sync.Mutex
	held := map[string]transfer.ObjectRetention{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4 * max(p.o.Parallel, 4))
	for _, k := range keys {
		g.Go(func() error {
			r, err := p.protection(gctx, versions[k], now)
			if err == nil && r.Mode != "" {
				mu.Lock()
				held[k] = r
				mu.Unlock()
			}
			return err
		})
	}
	return held, g.Wait()
}

// keepRetainedBackups moves the backups the policy removes whose manifest
// is still retained back to the kept ones: S3 would refuse to delete the
// manifest, and their data must stay with it.
func (p *purger) keepRetainedBackups(ctx context.Context) error {
	if len(p.rep.Removed) == 0 {
		return nil
	}
	versions, err := p.versions(ctx, p.node.Root()+manifest.BackupsDir+"/")
	if err != nil {
		return err
	}
	p.manifestVersions = versions
	keys := make([]string, len(p.rep.Removed))
	for i, b := range p.rep.Removed {
		keys[i] = p.node.Root() + manifest.ManifestKey(b.ID)
	}
	held, err := p.protections(ctx, keys, versions)
	if err != nil {
		return err
	}
	var removed []Backup
	for i, b := range p.rep.Removed {
		r, ok := held[keys[i]]
		if !ok {
			removed = append(removed, b)
			continue
		}
		b.Reasons = append(b.Reasons, fmt.Sprintf("Object Lock retention (%s) until %s", strings.ToLower(r.Mode), r.Until.Format(time.RFC3339)))
		p.rep.Kept = append(p.rep.Kept, b)
		p.rep.Retained.Backups++
		p.rep.Retained.add(keys[i], r)
	}
	p.rep.Removed = removed
	slices.SortFunc(p.rep.Kept, func(a, b Backup) int { return strings.Compare(a.ID, b.ID) })
	return nil
}

// dropRetained takes the objects still retained out of doomed.
func (p *purger) dropRetained(ctx context.Context, doomed []transfer.ObjectInfo) ([]transfer.ObjectInfo, error) {
	if len(doomed) == 0 {
		return doomed, nil
	}
	versions, err := p.versions(ctx, p.node.Root()+manifest.DataDir+"/")
	if err != nil {
		return nil, err
	}
	p.dataVersions = versions
	keys := make([]string, len(doomed))
	for i, o := range doomed {
		keys[i] = o.Key
	}
	held, err := p.protections(ctx, keys, versions)
	if err != nil {
		return nil, err
	}
	kept := doomed[:0]
	for _, o := range doomed {
		r, ok := held[o.Key]
		if !ok {
			kept = append(kept, o)
			continue
		}
		p.rep.Retained.Objects++
		p.rep.Retained.Bytes += o.Size
		p.rep.Retained.add(o.Key, r)
	}
	return kept, nil
}

// deleteVersions deletes every version of keys (their delete markers
// included) as listed: a plain delete on an Object Lock bucket would only
// add a delete marker, hiding the object while it stays billed. A refused
// manifest version fails the purge (its backup would stay while its data
// went); see sweepVersions for data.
func (p *purger) deleteVersions(ctx context.Context, keys []string, versions map[string][]transfer.Version) error {
	var all []transfer.Version
	for _, k := range keys {
		all = append(all, versions[k]...)
	}
	return p.c.DeleteVersions(ctx, all, p.o.Parallel)
}

// sweepVersions deletes the doomed objects' versions. Versions S3 refuses
// although their retention had passed (a legal hold, a retention set
// meanwhile) stay and are reported as retained, not a failure; only when
// it refuses every version is the purge failed: that is a policy without
// s3:DeleteObjectVersion, not protected data.
func (p *purger) sweepVersions(ctx context.Context, doomed []string) error {
	err := p.deleteVersions(ctx, doomed, p.dataVersions)
	var refused *transfer.RefusedError
	if !errors.As(err, &refused) || len(refused.Refused) == refused.Of {
		return err
	}
	size := map[transfer.Version]int64{}
	for _, k := range doomed {
		for _, v := range p.dataVersions[k] {
			size[transfer.Version{Key: v.Key, VersionID: v.VersionID}] = v.Size
		}
	}
	keys := map[string]bool{}
	for _, v := range refused.Refused {
		if !keys[v.Key] {
			keys[v.Key] = true
			p.rep.Retained.Objects++
			p.rep.Retained.add(v.Key, transfer.ObjectRetention{Mode: "REFUSED"})
		}
		p.rep.Retained.Bytes += size[v]
		p.rep.BytesDeleted -= size[v]
	}
	p.rep.ObjectsDeleted -= len(keys)
	p.o.Logger.Warn("S3 refused to delete some versions whose retention had passed (a legal hold?): they stay", "versions", len(refused.Refused), "first", refused.Refused[0].Key)
	return nil
}
