package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// listSection times `s3bak list` over a node with many backups: one real
// small backup, its manifest copied under many backup ids, then list
// without the node's summaries (it reads every manifest's header), `s3bak
// index rebuild`, and list with the summaries.
func (b *bench) listSection(ctx context.Context) (*section, error) {
	dir := filepath.Join(b.dir, "list")
	defer os.RemoveAll(dir)
	t, err := b.generate(filepath.Join(dir, "data"), planSmall(24, b.rng(5)))
	if err != nil {
		return nil, err
	}
	n := b.cfg.manifests
	sec := &section{Name: "list", Layout: "list", Files: len(t.files), RawBytes: t.bytes,
		Title: fmt.Sprintf("s3bak list over %d manifests (one real backup + %d copies)", n+1, n)}
	bucket, err := b.newBucket(ctx, "list")
	if err != nil {
		return nil, err
	}
	j := &job{t: t, bucket: bucket, node: "cat-node"}
	if err := b.seedManifests(ctx, sec, j, filepath.Join(dir, "up")); err != nil {
		return nil, err
	}
	rebuild := b.hasIndexRebuild(ctx)
	if !rebuild {
		sec.Notes = append(sec.Notes, "`s3bak index rebuild` does not exist in this build: its row and the indexed list are skipped")
	}
	rows := []*row{sec.row("list, no summaries (reads every manifest)", "list", 0)}
	if rebuild {
		rows = append(rows, sec.row("index rebuild", "index", 0), sec.row("list, with the summaries", "list", 0))
	}
	for round := 1; round <= b.cfg.rounds; round++ {
		// The summaries (index.json.zst before stream manifests) the real
		// backup or the round before wrote; absent after a failed round.
		for _, key := range []string{"backups.json.zst", "index.json.zst"} {
			_, _ = b.run(ctx, b.s5cmd("rm", "s3://"+bucket+"/bench/cat-node/"+key))
		}
		for _, r := range rows {
			if r.Error == "" {
				b.listStep(ctx, j, r, round, n+1)
			}
		}
	}
	for _, r := range sec.Rows {
		r.finish()
	}
	return sec, b.dropBucket(ctx, bucket, "")
}

// listStep runs one timed command of the list section and checks that a
// list shows every backup.
func (b *bench) listStep(ctx context.Context, j *job, r *row, round, want int) {
	args := []string{"list", "--output", "json"}
	if r.Op == "index" {
		args = []string{"index", "rebuild"}
	}
	fmt.Printf("  round %d: %-40s", round, r.Tool)
	m, err := b.run(ctx, b.s3bak(j, args...))
	if err == nil && r.Op == "list" {
		var list []struct{ ID, Status string }
		if err = json.Unmarshal(m.stdout, &list); err == nil && len(list) != want {
			err = fmt.Errorf("list shows %d backups, want %d", len(list), want)
		}
	}
	if err != nil {
		r.fail(err)
		fmt.Printf(" FAILED: %s\n", oneLine(err.Error(), 300))
		return
	}
	r.add(round, m)
	if r.Op == "list" {
		r.Info = map[string]any{"backups": want}
	}
	fmt.Printf(" %7.2f s %6.0f MiB RSS\n", m.wall.Seconds(), mib(m.rss))
}

// seedManifests makes the real backup and uploads the copies of its
// manifest with s5cmd: ids one hour apart from 2020-01-01, "started" at the
// id's time and "finished" as long after as in the real one.
func (b *bench) seedManifests(ctx context.Context, sec *section, j *job, up string) error {
	m, err := b.run(ctx, b.s3bak(j, "backup", "--data-dir", j.t.dataDir, "--tag", j.t.tag))
	if err != nil {
		return fmt.Errorf("the real backup: %w", err)
	}
	st, err := parseBackupLog(m.stderr)
	if err != nil {
		return err
	}
	m, err = b.run(ctx, b.s5cmd("cat", "s3://"+j.bucket+"/bench/"+j.node+"/backups/"+st.ID+".json"))
	if err != nil {
		return fmt.Errorf("read the real manifest: %w", err)
	}
	dir := filepath.Join(up, "bench", j.node, "backups")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// A stream manifest (schema 3) is copied with its header frame
	// rewritten; the manifests of older s3bak are zstd-compressed JSON
	// (older still, plain JSON), and the copies are stored the same way.
	if sm, err := parseStreamManifest(m.stdout); err == nil && sm.id == st.ID {
		defer sm.close()
		for i := range b.cfg.manifests {
			at := base.Add(time.Duration(i) * time.Hour)
			id := at.Format("20060102T150405Z")
			head, err := sm.header(id, at)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, id+".json"), append(head, sm.rest...), 0o644); err != nil {
				return err
			}
		}
		return b.uploadManifests(ctx, sec, up, j.bucket, len(m.stdout), st.Files)
	}
	raw := m.stdout
	compressed := bytes.HasPrefix(raw, []byte{0x28, 0xb5, 0x2f, 0xfd})
	if compressed {
		if raw, err = chunk.Inflate(raw, 1<<30); err != nil {
			return fmt.Errorf("the real manifest: %w", err)
		}
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("the real manifest: %w", err)
	}
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		return err
	}
	defer zw.Close()
	took := manifestDuration(doc)
	for i := range b.cfg.manifests {
		at := base.Add(time.Duration(i) * time.Hour)
		id := at.Format("20060102T150405Z")
		doc["id"], doc["started"], doc["finished"] = id, at.Format(time.RFC3339Nano), at.Add(took).Format(time.RFC3339Nano)
		body, _ := json.Marshal(doc)
		if compressed {
			body = zw.EncodeAll(body, nil)
		}
		if err := os.WriteFile(filepath.Join(dir, id+".json"), body, 0o644); err != nil {
			return err
		}
	}
	return b.uploadManifests(ctx, sec, up, j.bucket, len(m.stdout), st.Files)
}

// uploadManifests uploads the copies written under up.
func (b *bench) uploadManifests(ctx context.Context, sec *section, up, bucket string, size, files int) error {
	start := time.Now()
	if _, err := b.run(ctx, b.s5cmd("cp", up+"/*", "s3://"+bucket+"/")); err != nil {
		return fmt.Errorf("upload the manifests: %w", err)
	}
	sec.Notes = append(sec.Notes, fmt.Sprintf("each manifest is %d bytes (%d files); s5cmd uploaded the %d copies in %s",
		size, files, b.cfg.manifests, time.Since(start).Round(time.Millisecond)))
	return nil
}

func manifestDuration(doc map[string]any) time.Duration {
	s, _ := doc["started"].(string)
	f, _ := doc["finished"].(string)
	ts, err1 := time.Parse(time.RFC3339Nano, s)
	tf, err2 := time.Parse(time.RFC3339Nano, f)
	if err1 != nil || err2 != nil || tf.Before(ts) {
		return time.Second
	}
	return tf.Sub(ts)
}

// hasIndexRebuild tells whether this s3bak has `index rebuild`.
func (b *bench) hasIndexRebuild(ctx context.Context) bool {
	m, err := b.run(ctx, cmd(b.bin.s3bak, "index", "rebuild", "--help"))
	return err == nil && strings.Contains(string(m.stdout), "rebuild")
}
