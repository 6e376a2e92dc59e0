package backup

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/lock"
)

// breakOnFirstProgress takes the node's lock away, the way
// `purge --break-lock` does, as soon as the backup has read its first
// bytes: the backup is then mid-run, holding a lock it no longer has.
type breakOnFirstProgress struct {
	t    *testing.T
	key  string
	once sync.Once
}

func (b *breakOnFirstProgress) Add(int64) {
	b.once.Do(func() {
		l, err := lock.Acquire(context.Background(), client, b.key, lock.Info{Op: "purge", Host: "other-host"}, lock.Options{Break: true})
		if err != nil {
			b.t.Errorf("break the lock: %v", err)
			return
		}
		b.t.Cleanup(func() { _ = l.Release(context.Background()) })
	})
}

// TestBrokenLockCannotCommit: a backup that lost its lock mid-run (broken,
// or taken over while it was paused past its lease) must write neither its
// manifest nor the node's index, and must say the lock was lost. Before
// fencing it exited 0 with a manifest referencing objects the purge that
// broke its lock had deleted.
func TestBrokenLockCannotCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	set := writeSet(t, 1, 3<<20, 50)
	e, _, _ := engine(t, "fenced", nil, 2, 4)
	key := e.opts.Node.Root() + lock.Key
	e.opts.Progress = &breakOnFirstProgress{t: t, key: key}
	// A lease far longer than the run: only fencing can notice the loss.
	_, err := e.RunLocked(ctx, set, SessionOptions{Lease: time.Hour, Checkpoint: 50 * time.Millisecond})
	if !errors.Is(err, lock.ErrLost) {
		t.Fatalf("backup after its lock was broken: %v, want lock.ErrLost", err)
	}
	ids, err := catalog.IDs(ctx, client, e.opts.Node)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 0 {
		t.Fatalf("a run that lost its lock wrote manifests %v", ids)
	}
	if keys, err := catalog.CheckpointKeys(ctx, client, e.opts.Node); err != nil || len(keys) != 0 {
		t.Fatalf("a run that lost its lock wrote checkpoints %v (%v)", keys, err)
	}
	holder, err := lock.Read(ctx, client, key)
	if err != nil || holder == nil || holder.Host != "other-host" {
		t.Fatalf("the new holder's lock was not left alone: %+v, %v", holder, err)
	}
}
