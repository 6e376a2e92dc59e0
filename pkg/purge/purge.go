package purge

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Options configure a purge of one node.
type Options struct {
	Policy Policy
	// Select, when set, decides which of the node's backups stay instead of
	// Policy.Apply: a purge by the cluster's tags keeps on every node the
	// backups of the tags the policy keeps for the cluster.
	Select func(backups []Backup) (keep, remove []Backup)
	DryRun bool
	// Grace spares unreferenced objects and pending markers younger than
	// this: a backup that is running now has uploaded them and has not yet
	// written the manifest that references them.
	Grace time.Duration
	// UploadAge aborts unfinished multipart uploads older than this.
	UploadAge time.Duration
	BreakLock bool
	Lease     time.Duration
	// Parallel DeleteObjects requests.
	Parallel int
	Logger   *slog.Logger
	Now      func() time.Time
	// ObjectLock says the bucket has S3 Object Lock (and so versioning):
	// the purge then keeps every backup and object still retained, and
	// deletes the others' versions outright instead of adding delete
	// markers.
	ObjectLock bool
}

// Report is what a purge did, or with DryRun would do.
type Report struct {
	Node           string   `json:"node"`
	DryRun         bool     `json:"dry_run"`
	Kept           []Backup `json:"kept"`
	Removed        []Backup `json:"removed"`
	ObjectsDeleted int      `json:"objects_deleted"`
	BytesDeleted   int64    `json:"bytes_deleted"`
	ObjectsKept    int      `json:"objects_kept"`
	// YoungOrphans are unreferenced objects spared by the grace period.
	YoungOrphans   int `json:"young_orphans"`
	UploadsAborted int `json:"uploads_aborted"`
	PendingRemoved int `json:"pending_removed"`
	// EarlyDeletion is what deleting objects younger than their storage
	// class's minimum duration costs (a dry run: would cost).
	EarlyDeletion EarlyDeletion `json:"early_deletion"`
	// Retained is what Object Lock protects from this purge (kept, not an
	// error).
	Retained Retained `json:"retained"`
}

// Run purges one node. It holds the node's lock throughout, so no backup of
// the node runs meanwhile (a dry run takes no lock: it changes nothing).
func Run(ctx context.Context, c *transfer.Client, node manifest.Node, o Options) (*Report, error) {
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &purger{c: c, node: node, o: o, rep: &Report{Node: node.Name, DryRun: o.DryRun}}
	if o.DryRun {
		return p.rep, p.run(ctx)
	}
	err := lock.Run(ctx, c, node.Root()+lock.Key, lock.Info{Op: "purge"},
		lock.Options{Lease: o.Lease, Break: o.BreakLock, Logger: o.Logger, Now: o.Now},
		func(ctx context.Context, l *lock.Lock) error {
			p.fence = l.Fence
			return p.run(ctx)
		})
	return p.rep, err
}

type purger struct {
	c    *transfer.Client
	node manifest.Node
	o    Options
	rep  *Report
	// fence proves the node's lock is still held before each step that
	// deletes or rewrites: a purge that lost its lock must not delete what a
	// new backup may reference. Nil in a dry run.
	fence func(context.Context) error
	// The versions of the manifests and data, by key, on an Object Lock
	// bucket (see versions).
	manifestVersions, dataVersions map[string][]transfer.Version
}

// fenced runs step only once the lock is proven held.
func (p *purger) fenced(ctx context.Context, step func(context.Context) error) error {
	if p.fence != nil && !p.o.DryRun {
		if err := p.fence(ctx); err != nil {
			return err
		}
	}
	return step(ctx)
}

func (p *purger) run(ctx context.Context) error {
	ids, err := catalog.IDs(ctx, p.c, p.node)
	if err != nil {
		return err
	}
	backups := make([]Backup, len(ids))
	for i, id := range ids {
		t, _ := manifest.IDTime(id) // an id of another form: zero time, always kept
		backups[i] = Backup{ID: id, Time: t}
	}
	sel := p.o.Policy.Apply
	if p.o.Select != nil {
		sel = p.o.Select
	}
	p.rep.Kept, p.rep.Removed = sel(backups)
	p.rep.Retained.First = []RetainedKey{}
	if p.o.ObjectLock {
		if err := p.keepRetainedBackups(ctx); err != nil {
			return err
		}
	}
	if err := p.fenced(ctx, p.deleteManifests); err != nil {
		return err
	}
	referenced, err := p.mark(ctx)
	if err != nil {
		return err
	}
	orphans, err := p.orphans(ctx, referenced)
	if err != nil {
		return err
	}
	if p.o.ObjectLock {
		if orphans, err = p.dropRetained(ctx, orphans); err != nil {
			return err
		}
	}
	doomed := p.count(orphans)
	if err := p.fenced(ctx, p.updateSummaries); err != nil {
		return err
	}
	// Before the sweep: a checkpoint must never offer a deleted object.
	if err := p.fenced(ctx, p.staleCheckpoints); err != nil {
		return err
	}
	if err := p.fenced(ctx, func(ctx context.Context) error { return p.sweep(ctx, doomed) }); err != nil {
		return err
	}
	return p.fenced(ctx, p.cleanUp)
}

func (p *purger) deleteManifests(ctx context.Context) error {
	if p.o.DryRun || len(p.rep.Removed) == 0 {
		return nil
	}
	keys := make([]string, len(p.rep.Removed))
	for i, b := range p.rep.Removed {
		keys[i] = p.node.Root() + manifest.ManifestKey(b.ID)
	}
	p.o.Logger.Info("deleting manifests", "node", p.node.Name, "count", len(keys))
	if p.o.ObjectLock {
		return p.deleteVersions(ctx, keys, p.manifestVersions)
	}
	return p.c.DeleteMany(ctx, keys, p.o.Parallel)
}

// mark collects every object key the kept manifests reference. Any
// manifest that cannot be read stops the purge before anything is swept:
// deleting on incomplete knowledge is how backups are lost.
func (p *purger) mark(ctx context.Context) (map[string][]string, error) {
	ids := make([]string, len(p.rep.Kept))
	for i, b := range p.rep.Kept {
		ids[i] = b.ID
	}
	referenced, err := catalog.References(ctx, p.c, p.node, ids)
	if err != nil {
		return nil, fmt.Errorf("read the kept manifests (nothing was garbage-collected): %w", err)
	}
	return referenced, nil
}

// orphans lists the objects under data/ that nothing references and that
// are older than the grace period.
func (p *purger) orphans(ctx context.Context, referenced map[string][]string) ([]transfer.ObjectInfo, error) {
	cutoff := p.o.Now().Add(-p.o.Grace)
	var orphans []transfer.ObjectInfo
	for o, err := range p.c.List(ctx, p.node.Root()+manifest.DataDir+"/") {
		if err != nil {
			return nil, err
		}
		switch {
		case referenced[o.Key] != nil:
			p.rep.ObjectsKept++
		case o.LastModified.After(cutoff):
			p.rep.YoungOrphans++
		default:
			orphans = append(orphans, o)
		}
	}
	return orphans, nil
}

// count reports the objects to delete and returns their keys.
func (p *purger) count(doomed []transfer.ObjectInfo) []string {
	keys := make([]string, len(doomed))
	for i, o := range doomed {
		keys[i] = o.Key
		p.rep.BytesDeleted += o.Size
		p.rep.EarlyDeletion.add(o.StorageClass, o.Size, o.LastModified, p.o.Now())
	}
	p.rep.ObjectsDeleted = len(keys)
	return keys
}

func (p *purger) sweep(ctx context.Context, doomed []string) error {
	if p.o.DryRun || len(doomed) == 0 {
		return nil
	}
	p.o.Logger.Info("deleting unreferenced objects", "node", p.node.Name, "count", len(doomed), "bytes", p.rep.BytesDeleted)
	if p.o.ObjectLock {
		return p.sweepVersions(ctx, doomed)
	}
	return p.c.DeleteMany(ctx, doomed, p.o.Parallel)
}

// cleanUp aborts old unfinished multipart uploads and removes old pending
// markers, and those of backups that have their manifest: with the lock
// held, all belong to runs that died.
func (p *purger) cleanUp(ctx context.Context) error {
	uploadCutoff := p.o.Now().Add(-p.o.UploadAge)
	for u, err := range p.c.ListUploads(ctx, p.node.Root()) {
		if err != nil {
			return err
		}
		if u.Initiated.After(uploadCutoff) {
			continue
		}
		p.rep.UploadsAborted++
		if !p.o.DryRun {
			if err := p.c.Abort(ctx, u); err != nil {
				return err
			}
		}
	}
	pending, err := catalog.ListPending(ctx, p.c, p.node)
	if err != nil {
		return err
	}
	// A marker of a backup that has its manifest (kept or just purged)
	// was left by a run that stopped between the two: stale, whatever its
	// age.
	complete := map[string]bool{}
	for _, bs := range [][]Backup{p.rep.Kept, p.rep.Removed} {
		for _, b := range bs {
			complete[b.ID] = true
		}
	}
	cutoff := p.o.Now().Add(-p.o.Grace)
	for _, pd := range pending {
		if pd.Started.After(cutoff) && !complete[pd.ID] {
			continue
		}
		p.rep.PendingRemoved++
		if !p.o.DryRun {
			if err := p.c.Delete(ctx, p.node.Root()+catalog.PendingKey(pd.ID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// updateSummaries drops the removed backups from the summaries list
// reads, and removes the index of an older s3bak, which would offer that
// s3bak the objects about to be deleted.
func (p *purger) updateSummaries(ctx context.Context) error {
	if p.o.DryRun {
		return nil
	}
	if _, err := catalog.UpdateSummaries(ctx, p.c, p.node); err != nil {
		return fmt.Errorf("update the node's backup summaries: %w", err)
	}
	if err := p.c.Delete(ctx, p.node.Root()+manifest.LegacyIndexKey); err != nil {
		return fmt.Errorf("remove the index of an older s3bak: %w", err)
	}
	return nil
}

// staleCheckpoints removes the checkpoints of killed runs older than the
// grace period: the objects they record are unreferenced, and go too.
func (p *purger) staleCheckpoints(ctx context.Context) error {
	cutoff := p.o.Now().Add(-p.o.Grace)
	for o, err := range p.c.List(ctx, p.node.Root()+manifest.CheckpointsDir+"/") {
		if err != nil {
			return err
		}
		if _, ok := manifest.CheckpointID(o.Key); !ok || o.LastModified.After(cutoff) {
			continue
		}
		if !p.o.DryRun {
			if err := p.c.Delete(ctx, o.Key); err != nil {
				return err
			}
		}
	}
	return nil
}
