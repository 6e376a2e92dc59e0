package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

// resolve names the tag (--tag auto: the period's, from now) and checks
// the snapshot flags; it returns the nodetool that --snapshot runs.
func (o *backupOptions) resolve(now time.Time) (cassandra.Nodetool, error) {
	var nt cassandra.Nodetool
	if o.tag == "auto" {
		if o.hbaseRoot != "" {
			return nt, &usageError{errors.New("--tag auto names a Cassandra snapshot: not with --hbase-root")}
		}
		tag, err := cassandra.AutoTag(now, o.tagPeriod)
		if err != nil {
			return nt, &usageError{err}
		}
		o.tag = tag
	}
	if !o.snapshot {
		return nt, nil
	}
	if o.hbaseRoot != "" {
		return nt, &usageError{errors.New("--snapshot takes a Cassandra snapshot with nodetool: not with --hbase-root")}
	}
	if len(o.dataDirs) == 0 || o.tag == "" {
		return nt, &usageError{errors.New("--snapshot needs --data-dir (every data_file_directories entry) and --tag (a name, or auto)")}
	}
	if err := manifest.CheckName("--tag", o.tag); err != nil || strings.ContainsAny(o.tag, `/\`) {
		return nt, &usageError{fmt.Errorf("--tag %q: not a snapshot name nodetool takes", o.tag)}
	}
	words, err := cassandra.SplitCommand(o.nodetool)
	if err != nil {
		return nt, &usageError{fmt.Errorf("--nodetool: %w", err)}
	}
	return cassandra.Nodetool{Command: words, Timeout: o.nodetoolTimeout}, nil
}

// alreadyBackedUp says whether the node has a complete backup of the tag:
// then the run says so, makes no second copy and succeeds (unless --again),
// and with --snapshot takes no snapshot, and clears the tag's snapshot if
// an earlier run left it. A backup of some keyspaces or tables does not
// stand for the rest of the snapshot: with --keyspace or --table every run
// backs up.
func (o *backupOptions) alreadyBackedUp(ctx context.Context, g *globalOptions, c *transfer.Client, node manifest.Node, nt cassandra.Nodetool) (bool, error) {
	if o.again || o.hbaseRoot != "" || o.tag == "" || len(o.keyspaces) > 0 || len(o.tables) > 0 {
		return false, nil
	}
	list, err := catalog.ListComplete(ctx, c, node)
	if err != nil {
		return false, fmt.Errorf("read the node's backups (is tag %s backed up already?): %w", o.tag, err)
	}
	ids := catalog.TagIDs(list, o.tag)
	if len(ids) == 0 {
		return false, nil
	}
	i := slices.IndexFunc(list, func(s catalog.Summary) bool { return s.ID == ids[len(ids)-1] })
	s := list[i]
	g.run.id, g.run.stats = s.ID, &runStats{}
	g.logger.Info("tag already backed up: nothing to do (--again backs it up once more)", "cluster", node.Cluster, "node", node.Name, "tag", o.tag, "id", s.ID)
	if o.snapshot && len(o.snapshotDirs()) > 0 {
		g.logger.Info("clearing the snapshot an earlier run left", "tag", o.tag)
		if err := nt.ClearSnapshot(ctx, o.tag); err != nil {
			return true, fmt.Errorf("tag %s is already backed up (backup %s), but its snapshot was not cleared: %w", o.tag, s.ID, err)
		}
	}
	if o.output == "json" {
		return true, writeJSON(g.stdout, backupOutput{
			Cluster: node.Cluster, Node: node.Name, Kind: s.Kind, Tag: s.Tag, BackupID: s.ID, Started: s.Time,
			Files: s.Files, RawBytes: s.RawBytes, StoredBytes: s.StoredBytes, Manifest: node.Root() + manifest.ManifestKey(s.ID),
			Tool: toolVersion(), AlreadyBackedUp: true,
		})
	}
	_, err = fmt.Fprintf(g.stdout, "tag %s is already backed up on %s/%s: backup %s (%s, %s raw, %s stored); nothing to do (--again backs it up once more)\n",
		o.tag, node.Cluster, node.Name, s.ID, units.Plural(s.Files, "file"), units.Human(s.RawBytes), units.Human(s.StoredBytes))
	return true, err
}

// takeSnapshot runs nodetool snapshot -t TAG (one call snapshots every
// keyspace in every data directory) and finds its files. A snapshot of the
// tag that is already there was kept by a run that failed: it is backed up
// as it is (nodetool would refuse to take it again), and the backup
// resumes where that run stopped.
func (o *backupOptions) takeSnapshot(ctx context.Context, logger *slog.Logger, nt cassandra.Nodetool) (*source.Set, error) {
	if len(o.snapshotDirs()) > 0 {
		logger.Info("the snapshot is already there, kept by an earlier run: backing it up", "tag", o.tag)
	} else {
		logger.Info("taking the snapshot", "tag", o.tag)
		start := time.Now()
		out, err := nt.Run(ctx, "snapshot", "-t", o.tag)
		if err != nil {
			// A snapshot that failed half-way is not one to back up.
			if len(o.snapshotDirs()) == 0 {
				return nil, fmt.Errorf("take the snapshot: %w", err)
			}
			if cerr := nt.ClearSnapshot(context.WithoutCancel(ctx), o.tag); cerr != nil {
				return nil, fmt.Errorf("take the snapshot: %w (and clearing what it left failed: %v)", err, cerr)
			}
			return nil, fmt.Errorf("take the snapshot: %w", err)
		}
		logger.Info("snapshot taken", "tag", o.tag, "duration_seconds", time.Since(start).Seconds(), "nodetool", strings.Join(strings.Fields(out), " "))
	}
	return o.discover(ctx, logger)
}

// keepOrClear ends a backup of a snapshot s3bak took that failed with err:
// the snapshot is kept for the next run, which backs it up, unless
// --clear-on-failure.
func (o *backupOptions) keepOrClear(ctx context.Context, logger *slog.Logger, nt cassandra.Nodetool, err error) error {
	// Another run holds the node (two cron runs overlapping): the snapshot
	// is the one it is backing up, and it clears it when it is done.
	var held *lock.HeldError
	if errors.As(err, &held) || errors.Is(err, lock.ErrLost) {
		return err
	}
	if !o.clearOnFailure {
		if len(o.snapshotDirs()) == 0 {
			return err
		}
		return fmt.Errorf("%w; the snapshot %s is kept: the next run with this --tag backs it up (or clear it: nodetool clearsnapshot -t %s)", err, o.tag, o.tag)
	}
	logger.Info("clearing the snapshot after the failure (--clear-on-failure)", "tag", o.tag)
	if cerr := nt.ClearSnapshot(context.WithoutCancel(ctx), o.tag); cerr != nil {
		return fmt.Errorf("%w (and clearing the snapshot %s failed: %v)", err, o.tag, cerr)
	}
	return fmt.Errorf("%w (the snapshot %s is cleared: --clear-on-failure)", err, o.tag)
}

// snapshotDirs are the directories of the tag's snapshot in the data
// directories: <data>/<keyspace>/<table>-<id>/snapshots/<tag>.
func (o *backupOptions) snapshotDirs() []string {
	var out []string
	for _, d := range o.dataDirs {
		tables, _ := filepath.Glob(filepath.Join(d, "*", "*", "snapshots"))
		for _, t := range tables {
			p := filepath.Join(t, o.tag)
			if fi, err := os.Stat(p); err == nil && fi.IsDir() {
				out = append(out, p)
			}
		}
	}
	return out
}

// warnOlderSnapshots warns of the snapshots of other periods that --tag
// auto runs kept when they failed: nothing clears them on its own, and
// their hard links hold the disk space of sstables compacted away since.
func (o *backupOptions) warnOlderSnapshots(logger *slog.Logger) {
	if !strings.HasPrefix(o.tag, cassandra.AutoTagPrefix) {
		return
	}
	seen := map[string]bool{}
	for _, d := range o.dataDirs {
		m, _ := filepath.Glob(filepath.Join(d, "*", "*", "snapshots", cassandra.AutoTagPrefix+"*"))
		for _, p := range m {
			if tag := filepath.Base(p); tag != o.tag {
				seen[tag] = true
			}
		}
	}
	if len(seen) == 0 {
		return
	}
	tags := slices.Sorted(maps.Keys(seen))
	logger.Warn("snapshots of earlier periods are left on the node, kept by runs that failed: back them up (--snapshot --tag TAG) or clear them (nodetool clearsnapshot -t TAG)",
		"tags", strings.Join(tags, ", "))
}

// liveSize is the size of the live sstables of the tables a snapshot
// backs up (not the system keyspaces unless --include-system): about the
// size of the snapshot nodetool is about to take.
func (o *backupOptions) liveSize() int64 {
	var n int64
	for _, d := range o.dataDirs {
		tables, _ := filepath.Glob(filepath.Join(d, "*", "*"))
		for _, t := range tables {
			if strings.HasPrefix(filepath.Base(filepath.Dir(t)), "system") && !o.includeSystem {
				continue
			}
			entries, _ := os.ReadDir(t)
			for _, e := range entries {
				if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
					n += fi.Size()
				}
			}
		}
	}
	return n
}
