package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/s3bak/s3bak/pkg/manifest"
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
// backup writes, only they are retained (the lock, index, markers and run
// records are rewritten and deleted by design).
func manifestKeyOf(node manifest.Node) func(string) bool {
	dir := node.Root() + manifest.BackupsDir + "/"
	return func(key string) bool { return strings.HasPrefix(key, dir) }
}

// retentionHook prepares a backup with --retain-days: the bucket must have
// Object Lock (else a clear error before anything is written), the
// manifests are retained with the data, and the returned hook, run before
// the manifest is written, extends the retention of every object the
// backup references and did not store itself. Nil without --retain-days.
func (g *globalOptions) retentionHook(ctx context.Context, c *transfer.Client, node manifest.Node, logger *slog.Logger) (func(context.Context, *manifest.Manifest) error, error) {
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
	c.RetainAlso(manifestKeyOf(node))
	days := g.storage.retainDays
	return func(ctx context.Context, m *manifest.Manifest) error {
		until := transfer.CeilSecond(m.Started.Add(time.Duration(days) * 24 * time.Hour).UTC())
		keys := referencedKeys(node, m)
		start := time.Now()
		extended, err := c.ExtendAll(ctx, keys, until, mode, g.concurrency)
		if err != nil {
			return fmt.Errorf("protect the objects backup %s references until %s (--retain-days %d; no manifest was written, a rerun continues): %w",
				m.ID, until.Format(time.RFC3339), days, err)
		}
		if m.Meta == nil {
			m.Meta = map[string]string{}
		}
		m.Meta[metaRetainUntil] = until.Format(time.RFC3339)
		m.Meta[metaRetentionMode] = mode
		logger.Info("retention", "mode", mode, "until", until.Format(time.RFC3339), "objects", len(keys),
			"extended", extended, "seconds", time.Since(start).Seconds())
		return nil
	}, nil
}

// referencedKeys is every distinct object (content or pack) m references,
// as full keys.
func referencedKeys(node manifest.Node, m *manifest.Manifest) []string {
	seen := map[string]bool{}
	var keys []string
	for _, f := range m.Files {
		k := node.Root() + f.Key
		if f.Key == "" || seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
	}
	return keys
}
