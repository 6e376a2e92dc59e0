package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Manifest meta keys of a backup made with --retain-days: the date its
// data is protected until, and the mode. verify compares every referenced
// object's retention with them.
const (
	metaRetainUntil   = "s3bak.retain_until"
	metaRetentionMode = "s3bak.retention_mode"
)

// manifestKeyOf tells the keys of node's manifests: of the small objects a
// backup writes, only they are retained (the lock, summaries, checkpoints, markers and run
// records are rewritten and deleted by design).
func manifestKeyOf(node manifest.Node) func(string) bool {
	dir := node.Root() + manifest.BackupsDir + "/"
	return func(key string) bool { return strings.HasPrefix(key, dir) }
}

// backupRetention is a backup's --retain-days: the manifest and every
// object it references are retained until at least its start plus the
// days.
type backupRetention struct {
	c        *transfer.Client
	node     manifest.Node
	mode     string
	days     int
	parallel int
	logger   *slog.Logger
	// done says the objects were extended before the manifest was written.
	done bool
}

// retention prepares a backup with --retain-days: the bucket must have
// Object Lock (else a clear error before anything is written). The
// manifests are retained with the data: runBackup names them
// (Client.RetainAlso) before the client sends anything. Nil without
// --retain-days.
func (g *globalOptions) retention(ctx context.Context, c *transfer.Client, node manifest.Node) (*backupRetention, error) {
	if !c.Retaining() {
		return nil, nil
	}
	if err := c.RequireObjectLock(ctx); err != nil {
		return nil, err
	}
	mode, err := transfer.ParseRetentionMode(g.storage.retentionMode)
	if err != nil {
		return nil, &usageError{err}
	}
	return &backupRetention{c: c, node: node, mode: mode, days: g.storage.retainDays, parallel: g.concurrency, logger: g.logger}, nil
}

// hook is backup.Options.BeforeManifest (nil without retention).
func (r *backupRetention) hook() func(context.Context, *manifest.Manifest, []string) error {
	if r == nil {
		return nil
	}
	return r.beforeManifest
}

// beforeManifest extends, right before the manifest is written, the
// retention of every object the backup references and did not store
// itself, so that no backup exists whose data can be deleted before it
// expires; and records the date in the manifest's meta. keys are the
// distinct objects the manifest references, relative to the node's root.
func (r *backupRetention) beforeManifest(ctx context.Context, m *manifest.Manifest, keys []string) error {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.node.Root() + k
	}
	if err := r.extendKeys(ctx, m, full); err != nil {
		return fmt.Errorf("%w (no manifest was written; a rerun continues)", err)
	}
	if m.Meta == nil {
		m.Meta = map[string]string{}
	}
	m.Meta[metaRetainUntil] = r.until(m).Format(time.RFC3339)
	m.Meta[metaRetentionMode] = r.mode
	r.done = true
	return nil
}

// afterManifest extends the objects' retention from the stored manifest
// when beforeManifest could not (the backup engine did not call it, or
// did not hold the files). The manifest is retained already; an error
// here leaves objects it reuses with their earlier, shorter retention.
func (r *backupRetention) afterManifest(ctx context.Context, m *manifest.Manifest) error {
	if r == nil || r.done {
		return nil
	}
	if len(m.Files) == 0 {
		stored, err := catalog.Load(ctx, r.c, r.node, m.ID)
		if err != nil {
			return fmt.Errorf("backup %s is written, but its manifest could not be read back to extend the retention of the objects it reuses: %w", m.ID, err)
		}
		m = stored
	}
	if err := r.extend(ctx, m); err != nil {
		return fmt.Errorf("backup %s is written, but %w; run verify to see the objects, and back up again with --retain-days --again", m.ID, err)
	}
	return nil
}

// until is the date the backup is retained until.
func (r *backupRetention) until(m *manifest.Manifest) time.Time {
	return transfer.CeilSecond(m.Started.Add(time.Duration(r.days) * 24 * time.Hour).UTC())
}

// extend retains every object m references until r.until(m).
func (r *backupRetention) extend(ctx context.Context, m *manifest.Manifest) error {
	keys, err := referencedKeys(r.node, restore.Files(m.Files))
	if err != nil {
		return err
	}
	return r.extendKeys(ctx, m, keys)
}

// extendKeys retains the objects keys (full keys) until r.until(m).
func (r *backupRetention) extendKeys(ctx context.Context, m *manifest.Manifest, keys []string) error {
	until := r.until(m)
	start := time.Now()
	extended, err := r.c.ExtendAll(ctx, keys, until, r.mode, r.parallel)
	if err != nil {
		return fmt.Errorf("the objects backup %s references could not all be retained until %s (--retain-days %d): %w",
			m.ID, until.Format(time.RFC3339), r.days, err)
	}
	r.logger.Info("retention", "mode", r.mode, "until", until.Format(time.RFC3339), "objects", len(keys),
		"extended", extended, "seconds", time.Since(start).Seconds())
	return nil
}

// referencedKeys is every distinct object (content or pack) m references,
// as full keys.
func referencedKeys(node manifest.Node, files restore.Source) ([]string, error) {
	seen := map[string]bool{}
	var keys []string
	for f, err := range files.Files() {
		if err != nil {
			return nil, err
		}
		k := node.Root() + f.Key
		if f.Key == "" || seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
	}
	return keys, nil
}

// retentionCheck is verify's view of a backup's Object Lock retention: the
// date the backup is meant to be protected until (the later of its
// manifest's meta and the manifest object's own retention) and the
// referenced objects whose retention ends sooner — they could be deleted
// while the backup still needs them.
type retentionCheck struct {
	Until   time.Time         `json:"until,omitzero"`
	Mode    string            `json:"mode,omitempty"`
	Objects int               `json:"objects"` // objects checked
	Short   []retentionObject `json:"short"`
	Error   string            `json:"error,omitempty"` // the check could not be made
}

type retentionObject struct {
	Key   string    `json:"key"`
	Mode  string    `json:"mode,omitempty"`
	Until time.Time `json:"until,omitzero"`
}

// checkRetention reports, as warnings, the objects of m whose Object Lock
// retention ends before the backup's. It never fails verify: the backup
// restores today; what is at risk is tomorrow's purge by someone who may
// delete, and the fix (a backup with --retain-days, or PutObjectRetention)
// is not verify's to make. Nil on a bucket without Object Lock.
func checkRetention(ctx context.Context, w io.Writer, c *transfer.Client, node manifest.Node, m *manifest.Manifest, files restore.Source, quiet bool, parallel int) *retentionCheck {
	l, err := c.ObjectLockConfig(ctx)
	if err == nil && !l.Enabled {
		return nil
	}
	rc := &retentionCheck{Short: []retentionObject{}}
	warn := func(format string, args ...any) {
		if !quiet {
			fmt.Fprintf(w, format+"\n", args...)
		}
	}
	if err == nil {
		err = rc.check(ctx, c, node, m, files, parallel)
	}
	if err != nil {
		rc.Error = err.Error()
		warn("WARNING the backup's Object Lock retention could not be checked: %v", err)
		return rc
	}
	for _, o := range rc.Short {
		until := "no retention"
		if o.Mode != "" {
			until = strings.ToLower(o.Mode) + " until " + o.Until.Format(time.RFC3339)
		}
		warn("WARNING retention of s3://%s/%s (%s) ends before the backup's (%s): it may be deleted while the backup needs it; a backup with --retain-days extends it",
			c.Bucket, o.Key, until, rc.Until.Format(time.RFC3339))
	}
	return rc
}

// expiryOf is the date a backup is protected until, by its manifest's own
// retention: its start plus the whole days the manifest is retained beyond
// the backup's end. The manifest was written a little after the end (the
// seconds of its PUT, and of extending the reused objects), so the days
// are --retain-days; a manifest whose retention was extended since
// stretches the backup's expiry, and its objects should follow.
func expiryOf(m *manifest.Manifest, own transfer.ObjectRetention) time.Time {
	const day = 24 * time.Hour
	return transfer.CeilSecond(m.Started.Add(own.Until.Sub(m.Finished) / day * day).UTC())
}

// check reads the retention of the manifest and of every object m
// references.
func (rc *retentionCheck) check(ctx context.Context, c *transfer.Client, node manifest.Node, m *manifest.Manifest, files restore.Source, parallel int) error {
	mkey := node.Root() + manifest.ManifestKey(m.ID)
	own, err := c.GetRetention(ctx, mkey, "")
	if err != nil {
		return err
	}
	if own.Mode != "" {
		rc.Until, rc.Mode = expiryOf(m, own), own.Mode
	}
	if t, err := time.Parse(time.RFC3339, m.Meta[metaRetainUntil]); err == nil {
		if t.After(rc.Until) {
			rc.Until, rc.Mode = t, m.Meta[metaRetentionMode]
		}
		if !own.Covers(t) {
			rc.Short = append(rc.Short, retentionObject{Key: mkey, Mode: own.Mode, Until: own.Until})
		}
	}
	if rc.Until.IsZero() {
		return nil // a backup made without --retain-days: nothing to compare
	}
	keys, err := referencedKeys(node, files)
	if err != nil {
		return err
	}
	rc.Objects = len(keys)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for _, k := range keys {
		g.Go(func() error {
			r, err := c.GetRetention(gctx, k, "")
			if err != nil || r.Covers(rc.Until) {
				return err
			}
			mu.Lock()
			rc.Short = append(rc.Short, retentionObject{Key: k, Mode: r.Mode, Until: r.Until})
			mu.Unlock()
			return nil
		})
	}
	err = g.Wait()
	slices.SortFunc(rc.Short, func(a, b retentionObject) int { return strings.Compare(a.Key, b.Key) })
	return err
}
