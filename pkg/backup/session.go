package backup

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// SessionOptions configure RunLocked.
type SessionOptions struct {
	Lease     time.Duration // the lock's lease (default lock.DefaultLease)
	BreakLock bool          // take the node's lock even from a live holder
	// Checkpoint is how often the run records what it stored, so that a
	// killed run's successor skips it (default 5s).
	Checkpoint time.Duration
}

// RunLocked is a backup as cron runs it: it holds the node's lock, marks
// the backup pending, aborts multipart uploads that dead runs left, decides
// what to read and upload from what the node has stored (catalog.Known:
// the last backup and the checkpoints of killed runs), checkpoints as it
// goes (so a rerun after a crash resumes), writes the manifest last, then
// updates the backup summaries and clears the pending markers of this tag.
func (e *Engine) RunLocked(ctx context.Context, set *source.Set, o SessionOptions) (*Result, error) {
	node := e.opts.Node
	if err := node.Validate(); err != nil {
		return nil, err
	}
	m := e.newManifest(set)
	var res *Result
	err := lock.Run(ctx, e.client, node.Root()+lock.Key,
		lock.Info{Op: "backup", Tag: set.Tag, Backup: m.ID},
		lock.Options{Lease: o.Lease, Break: o.BreakLock, Logger: e.opts.Logger},
		func(ctx context.Context, l *lock.Lock) (err error) {
			res, err = e.locked(ctx, l, m, set, o)
			return err
		})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func (e *Engine) locked(ctx context.Context, l *lock.Lock, m *manifest.Manifest, set *source.Set, o SessionOptions) (*Result, error) {
	node := e.opts.Node
	host, _ := os.Hostname()
	p := catalog.Pending{ID: m.ID, Kind: set.Kind, Tag: set.Tag, Host: host, PID: os.Getpid(), Started: m.Started}
	// What the node has stored, its unfinished uploads and this run's
	// pending marker do not wait for each other: at once, so that a
	// backup pays the longest of them instead of their sum (half a dozen
	// round trips to S3, 20 ms each through the bench's network proxy).
	var (
		known   *catalog.Known
		uploads []transfer.Upload
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		known, err = catalog.OpenKnown(gctx, e.client, node, catalog.KnownOptions{ID: m.ID, Dir: e.opts.TempDir, Logger: e.opts.Logger})
		if err != nil {
			return fmt.Errorf("read what the node has stored: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		for u, err := range e.client.ListUploads(gctx, node.Root()+manifest.DataDir+"/") {
			if err != nil {
				return fmt.Errorf("list unfinished uploads: %w", err)
			}
			uploads = append(uploads, u)
		}
		return nil
	})
	g.Go(func() error {
		if err := catalog.WritePending(gctx, e.client, node, p); err != nil {
			return fmt.Errorf("mark backup %s as started: %w", m.ID, err)
		}
		return nil
	})
	err := g.Wait()
	if known != nil {
		defer known.Close()
	}
	if err != nil {
		return nil, err
	}
	// The lookup tables live for the whole run: out of the budget first.
	release, err := e.opts.Budget.Carve(ctx, known.Memory(), 0)
	if err != nil {
		return nil, err
	}
	defer release()
	e.opts.Known = known
	if lost := known.Lost; len(lost) > 0 {
		e.opts.Logger.Warn("objects the last backup references are not in the bucket as recorded: their files are read and uploaded again; the backups that reference them fail verify (run s3bak verify)",
			"objects", len(lost), "first", lost[0].Key, "why", lost[0].Why)
	}
	if err := e.abortLeftovers(ctx, uploads, known.PartialUploads()); err != nil {
		return nil, err
	}
	// Only the lock's holder may write the manifest or a checkpoint: a run
	// that lost its lock (broken, or taken over while this one was paused)
	// would reference objects the new holder may be deleting.
	e.fence = l.Fence
	save := func(ctx context.Context) error {
		if !known.Dirty() {
			return nil // nothing to write, so nothing to fence
		}
		if err := l.Fence(ctx); err != nil {
			return err
		}
		return known.Save(ctx)
	}
	stop := e.checkpoint(ctx, save, o.Checkpoint)
	res, runErr := e.run(ctx, m, set)
	stop()
	if runErr != nil {
		// Saved after a failure: what was uploaded is stored, and the
		// rerun should not upload it again.
		if err := save(context.WithoutCancel(ctx)); err != nil {
			e.opts.Logger.Warn("checkpoint failed", "err", err)
		}
		return nil, runErr
	}
	e.dropStalePartials(ctx, known, res.touched)
	e.complete(ctx, l, known, set, res.Manifest)
	return res, nil
}

// complete tidies up after the manifest is written: the summaries list
// reads gain the backup, the checkpoints it supersedes go, and so do the
// pending markers of its snapshot. The backup is complete whatever fails
// here; each failure is a warning. The steps touch different objects and
// none needs another's result, so they run at once: the tidying costs the
// longest of them (the summaries' read and write) instead of a dozen round
// trips one after the other.
func (e *Engine) complete(ctx context.Context, l *lock.Lock, known *catalog.Known, set *source.Set, m *manifest.Manifest) {
	node := e.opts.Node
	var wg sync.WaitGroup
	wg.Go(func() {
		// The fence proves the lock before the one write that needs it.
		err := l.Fence(ctx)
		if err == nil {
			err = known.SavePartials(ctx)
		}
		if err != nil {
			e.opts.Logger.Warn("backup complete, but its partial uploads were not updated", "err", err)
		}
	})
	wg.Go(func() { known.Done(ctx) })
	wg.Go(func() {
		// The new manifest is at hand: its summary is not read back.
		if _, err := catalog.UpdateSummaries(ctx, e.client, node, m); err != nil {
			e.opts.Logger.Warn("backup complete, but the summaries list reads were not updated (list reads the manifest instead)", "err", err)
		}
	})
	wg.Go(func() {
		// The index of an older s3bak would offer that s3bak contents purged
		// since: gone with the first backup that no longer keeps it.
		if err := e.client.Delete(ctx, node.Root()+manifest.LegacyIndexKey); err != nil {
			e.opts.Logger.Warn("could not remove the index of an older s3bak", "err", err)
		}
	})
	wg.Go(func() { e.clearPending(ctx, set, m.ID) })
	wg.Wait()
}

// abortLeftovers drops the node's unfinished multipart uploads: this run
// holds the lock, so any upload under the node's data is a dead run's —
// except those the checkpoints record as partial uploads, which this run may
// continue.
func (e *Engine) abortLeftovers(ctx context.Context, uploads []transfer.Upload, keep map[string]bool) error {
	for _, u := range uploads {
		if keep[u.ID] {
			continue
		}
		e.opts.Logger.Info("aborting an unfinished upload of an earlier run", "key", u.Key, "initiated", u.Initiated)
		if err := e.client.Abort(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// dropStalePartials abandons the partial uploads a complete backup did not
// continue: their files are gone from the snapshot or changed.
func (e *Engine) dropStalePartials(ctx context.Context, known *catalog.Known, touched map[string]bool) {
	for _, key := range known.PartialKeys() {
		if touched[key] {
			continue
		}
		if p := known.Partial(key); p != nil {
			e.abandon(ctx, known, transfer.Upload{Key: e.opts.Node.Root() + key, ID: p.UploadID}, key)
		}
	}
}

// checkpoint saves what the run stored every interval while it goes on.
func (e *Engine) checkpoint(ctx context.Context, save func(context.Context) error, every time.Duration) (stop func()) {
	if every <= 0 {
		every = 5 * time.Second
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := save(ctx); err != nil && ctx.Err() == nil {
				e.opts.Logger.Warn("checkpoint failed", "err", err)
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// clearPending removes the markers of this backup and of the interrupted
// runs of the same snapshot it completed. Its own marker goes at once,
// while the others are listed and read.
func (e *Engine) clearPending(ctx context.Context, set *source.Set, id string) {
	root := e.opts.Node.Root()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := e.client.Delete(ctx, root+catalog.PendingKey(id)); err != nil {
			e.opts.Logger.Warn("could not remove a pending marker", "id", id, "err", err)
		}
	})
	defer wg.Wait()
	pending, err := catalog.ListPending(ctx, e.client, e.opts.Node, id)
	if err != nil {
		e.opts.Logger.Warn("could not list pending markers", "err", err)
		return
	}
	for _, p := range pending {
		if p.Tag != set.Tag || p.Kind != set.Kind {
			continue
		}
		if err := e.client.Delete(ctx, root+catalog.PendingKey(p.ID)); err != nil {
			e.opts.Logger.Warn("could not remove a pending marker", "id", p.ID, "err", err)
		}
	}
}
