package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// backupStats is s3bak's final log line of a backup.
type backupStats struct {
	Msg             string `json:"msg"`
	ID              string `json:"id"`
	Files           int    `json:"files"`
	RawBytes        int64  `json:"raw_bytes"`
	UploadedObjects int    `json:"uploaded_objects"`
	UploadedBytes   int64  `json:"uploaded_bytes"`
	Reused          int    `json:"reused"`
	Unread          int    `json:"unread"`
}

// parseBackupLog finds the "backup complete" line of s3bak's JSON logs.
func parseBackupLog(stderr []byte) (*backupStats, error) {
	sc := bufio.NewScanner(bytes.NewReader(stderr))
	sc.Buffer(nil, 1<<20)
	var last *backupStats
	for sc.Scan() {
		var s backupStats
		if json.Unmarshal(sc.Bytes(), &s) == nil && s.Msg == "backup complete" {
			last = &s
		}
	}
	if last == nil {
		return nil, errors.New(`no "backup complete" line in s3bak's log`)
	}
	return last, nil
}

func (s *backupStats) info() map[string]any {
	return map[string]any{"files": s.Files, "raw_bytes": s.RawBytes, "uploaded_objects": s.UploadedObjects,
		"uploaded_bytes": s.UploadedBytes, "reused": s.Reused, "unread": s.Unread}
}

// incremental times the second backup of a node after new sstables were
// added: the default set is snapshotted again under a new tag (hard links,
// as nodetool does) with pct percent new sstable files, and backed up with
// the same --node.
func (b *bench) incremental(ctx context.Context) (*section, error) {
	t, err := b.defaultTree()
	if err != nil {
		return nil, err
	}
	const tag2 = "bench-inc"
	t2, err := t.linkSnapshot(tag2)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, tb := range b.defaultPlan.tables {
			os.RemoveAll(filepath.Join(t.dataDir, filepath.FromSlash(tb.snapDir(tag2))))
		}
	}()
	extra := planExtra(b.defaultPlan, tag2, t, b.cfg.pct, b.rng(4))
	if err := t2.add(extra, b.cfg.seed); err != nil {
		return nil, err
	}
	added := len(t2.files) - len(t.files)
	sec := &section{Name: "incremental", Layout: "incremental", Files: len(t2.files), RawBytes: t2.bytes,
		Title: fmt.Sprintf("Second backup after %g%% new sstables (same node, new snapshot tag)", b.cfg.pct)}
	first := sec.row("first backup (tag bench)", "backup", t.bytes)
	second := sec.row(fmt.Sprintf("second backup (tag %s: +%d files, +%s)", tag2, added, human(t2.bytes-t.bytes)), "backup", t2.bytes)
	for round := 1; round <= b.cfg.rounds && first.Error == "" && second.Error == ""; round++ {
		if err := b.incrementalRound(ctx, t, t2, first, second, round); err != nil {
			return nil, err
		}
	}
	first.finish()
	second.finish()
	if first.MedianWallS > 0 && second.MedianWallS > 0 {
		sec.Notes = append(sec.Notes, fmt.Sprintf("second ÷ first: wall %.2f×, uploaded bytes %.3f×",
			second.MedianWallS/first.MedianWallS, float64(toInt(second.Info["uploaded_bytes"]))/float64(max(1, toInt(first.Info["uploaded_bytes"])))))
	}
	return sec, nil
}

// incrementalRound backs up the first snapshot and then the second into a
// fresh bucket; the first round also restores the second and verifies it.
func (b *bench) incrementalRound(ctx context.Context, t, t2 *tree, first, second *row, round int) error {
	bucket, err := b.newBucket(ctx, "incremental")
	if err != nil {
		return err
	}
	j := &job{bucket: bucket, node: "node-inc", out: b.outDir(bucket)}
	for _, step := range []struct {
		t *tree
		r *row
	}{{t, first}, {t2, second}} {
		j.t = step.t
		fmt.Printf("  round %d: %-40s", round, step.r.Tool)
		m, err := b.run(ctx, b.s3bak(j, "backup", "--data-dir", step.t.dataDir, "--tag", step.t.tag))
		var st *backupStats
		if err == nil {
			st, err = parseBackupLog(m.stderr)
		}
		if err != nil {
			step.r.fail(err)
			fmt.Printf(" FAILED: %s\n", oneLine(err.Error(), 300))
			return b.dropBucket(ctx, bucket, j.out)
		}
		step.r.add(round, m)
		step.r.Info = st.info()
		fmt.Printf(" %7.2f s %6.0f MiB RSS, uploaded %d contents (%s)\n", m.wall.Seconds(), mib(m.rss), st.UploadedObjects, human(st.UploadedBytes))
	}
	if round == 1 {
		_, err := b.run(ctx, b.s3bak(j, "restore", "--target", j.out))
		if err == nil {
			err = verifyTree(j.out, t2.restoredAs())
		}
		if err != nil {
			second.fail(fmt.Errorf("restore of the second backup: %w", err))
		} else {
			fmt.Println("  round 1: restore of the second backup verified")
		}
	}
	return b.dropBucket(ctx, bucket, j.out)
}
