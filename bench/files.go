package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// The files section (issue #14): s3bak at a high file count. For each
// -files N, a snapshot of N/8 sstables × 8 tiny components is generated
// once, then every round, in a fresh bucket: backup, a second backup of
// the unchanged snapshot (--again), restore (checked byte for byte),
// verify, verify --deep, 98 copies of the manifest under older ids and
// `index rebuild` (100 backups of the node), list, and purge keeping one.

// filesBackups is how many backups of the node list sees: the two real
// ones and copies of the manifest.
const filesBackups = 100

// filesStep is one timed command of the files section.
type filesStep struct {
	op, tool string
}

// filesSteps are the rows of each N, in the order they run.
var filesSteps = []filesStep{
	{"backup", "s3bak backup"},
	{"again", "s3bak backup --again (unchanged)"},
	{"restore", "s3bak restore"},
	{"verify", "s3bak verify"},
	{"deep", "s3bak verify --deep"},
	{"rebuild", "s3bak index rebuild"},
	{"list", "s3bak list"},
	{"purge", "s3bak purge --keep-last 1"},
}

// findFiles is the row of step op at n files; nil when there is none.
func (s *section) findFiles(n int, op string) *row {
	for _, r := range s.Rows {
		if r.Files == n && r.Op == op {
			return r
		}
	}
	return nil
}

// filesRow is the row of step op at n files, made when missing.
func (s *section) filesRow(n int, op string) *row {
	if r := s.findFiles(n, op); r != nil {
		return r
	}
	for _, st := range filesSteps {
		if st.op == op {
			r := &row{Tool: st.tool, Op: op, Files: n}
			s.Rows = append(s.Rows, r)
			return r
		}
	}
	panic("no files step " + op)
}

func (b *bench) filesSection(ctx context.Context) (*section, error) {
	counts := make([]string, len(b.cfg.files))
	for i, n := range b.cfg.files {
		counts[i] = fmt.Sprint(n)
	}
	sec := &section{Name: "files", Layout: "files",
		Title: fmt.Sprintf("High file counts (issue #14): %s files of 8-component sstables, 1–6 KiB each, %d tables", strings.Join(counts, ", "), len(filesTables))}
	for _, n := range b.cfg.files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.filesCount(ctx, sec, n); err != nil {
			return nil, err
		}
	}
	return sec, nil
}

// filesCount generates the tree of n files once and runs the rounds on it.
func (b *bench) filesCount(ctx context.Context, sec *section, n int) error {
	dir := filepath.Join(b.dir, "files", fmt.Sprint(n))
	defer os.RemoveAll(dir)
	p := planFiles(n, b.rng(6))
	start := time.Now()
	fmt.Printf("\ngenerating %d files under %s ...", len(p.specs), dir)
	t, err := writeTreeParallel(filepath.Join(dir, "data"), p, b.cfg.seed)
	if err != nil {
		return err
	}
	gen := time.Since(start)
	fmt.Printf(" %s in %s\n", human(t.bytes), gen.Round(time.Millisecond))
	p = nil // the specs of a million files: the tree has what the checks need
	n = len(t.files)
	sec.Files = max(sec.Files, n)
	sec.RawBytes = max(sec.RawBytes, t.bytes)
	for _, st := range filesSteps {
		sec.filesRow(n, st.op).bytes = t.bytes
	}
	var loads []string
	for round := 1; round <= b.cfg.rounds; round++ {
		before := loadAvg()
		if err := b.filesRound(ctx, sec, t, round); err != nil {
			return err
		}
		loads = append(loads, before+" → "+loadAvg())
	}
	for _, st := range filesSteps {
		r := sec.filesRow(n, st.op)
		r.finish()
		if (st.op == "backup" || st.op == "restore" || st.op == "again") && r.MedianWallS > 0 {
			if r.Info == nil {
				r.Info = map[string]any{}
			}
			r.Info["files_per_s"] = round1(float64(n) / r.MedianWallS)
		}
	}
	note := fmt.Sprintf("%d files (%s), generated in %s", n, human(t.bytes), gen.Round(100*time.Millisecond))
	if c := sec.filesRow(n, "backup").Info; c != nil {
		note += fmt.Sprintf("; catalog after the first backup: manifest %v bytes + checkpoints %v + summaries %v = %v bytes; %v packs, %s stored",
			c["manifest_bytes"], c["checkpoint_bytes"], c["summaries_bytes"], c["catalog_bytes"], c["packs"], human(toInt(c["stored_bytes"])))
	}
	note += "; load average (1 min) before → after each round: " + strings.Join(loads, ", ")
	sec.Notes = append(sec.Notes, note)
	return nil
}

// filesRound runs every step once on the tree, in a fresh bucket. Only a
// failure of the bench itself is returned: a failing step marks its row.
func (b *bench) filesRound(ctx context.Context, sec *section, t *tree, round int) error {
	n := len(t.files)
	bucket, err := b.newBucket(ctx, fmt.Sprintf("files%d", n))
	if err != nil {
		return err
	}
	j := &job{t: t, bucket: bucket, out: b.outDir(bucket), node: "node-files"}
	root := "s3://" + bucket + "/bench/" + j.node + "/"
	step := func(op string, args ...string) (*measure, bool) {
		r := sec.filesRow(n, op)
		if r.Error != "" {
			return nil, false
		}
		fmt.Printf("  %d files, round %d: %-36s", n, round, r.Tool)
		m, err := b.run(ctx, b.s3bak(j, args...))
		if err != nil {
			r.fail(err)
			fmt.Printf(" FAILED: %s\n", oneLine(err.Error(), 300))
			return nil, false
		}
		r.add(round, m)
		fmt.Printf(" %7.2f s %6.0f MiB RSS", m.wall.Seconds(), mib(m.rss))
		return m, true
	}
	fail := func(op string, err error) {
		sec.filesRow(n, op).fail(err)
		fmt.Printf(" FAILED: %s\n", oneLine(err.Error(), 300))
	}
	defer func() { _ = b.dropBucket(ctx, bucket, j.out) }()

	b.settle() // untimed: the generated tree's writeback must not land in a backup's time
	backupArgs := []string{"backup", "--data-dir", t.dataDir, "--tag", t.tag, "--output", "json"}
	m, ok := step("backup", backupArgs...)
	if !ok {
		return nil
	}
	first, err := parseBackupOutput(m.stdout)
	if err != nil {
		fail("backup", err)
		return nil
	}
	cat, err := b.catalogBytes(ctx, root, first.Manifest, bucket)
	if err != nil {
		fail("backup", err)
		return nil
	}
	cat["files"], cat["raw_bytes"], cat["stored_bytes"], cat["packs"] = first.Files, first.RawBytes, first.StoredBytes, first.Packs
	cat["catalog_bytes_per_file"] = round1(float64(toInt(cat["catalog_bytes"])) / float64(n))
	sec.filesRow(n, "backup").Info = cat
	fmt.Printf(", catalog %.1f bytes/file\n", cat["catalog_bytes_per_file"])

	if m, ok = step("again", append(backupArgs, "--again")...); ok {
		if again, err := parseBackupOutput(m.stdout); err != nil {
			fail("again", err)
		} else {
			sec.filesRow(n, "again").Info = map[string]any{"files": again.Files, "unread_files": again.Unread,
				"read_bytes": again.ReadBytes, "uploaded_bytes": again.UploadedBytes}
			fmt.Printf(", %d of %d files unread, %d bytes read\n", again.Unread, again.Files, again.ReadBytes)
		}
	}

	b.settle() // start with no dirty pages of the steps before
	if m, ok = step("restore", "restore", "--target", j.out, "--output", "json"); ok {
		sync := flush(j.out)
		r := sec.filesRow(n, "restore")
		r.Runs[len(r.Runs)-1].WallS = round3((m.wall + sync).Seconds())
		start := time.Now()
		if err := verifyTree(j.out, t.restoredAs()); err != nil {
			fail("restore", err)
		} else {
			fmt.Printf(" + %.2f s sync, verified in %s\n", sync.Seconds(), time.Since(start).Round(time.Millisecond))
		}
		_ = os.RemoveAll(j.out)
	}

	for _, v := range []struct {
		op   string
		args []string
	}{{"verify", []string{"verify", "--output", "json"}}, {"deep", []string{"verify", "--deep", "--output", "json"}}} {
		if m, ok = step(v.op, v.args...); ok {
			var out struct {
				OK    bool `json:"ok"`
				Files int  `json:"files"`
			}
			if err := json.Unmarshal(m.stdout, &out); err != nil || !out.OK || out.Files != n {
				fail(v.op, fmt.Errorf("verify says ok=%v for %d files (want %d): %v", out.OK, out.Files, n, err))
			} else {
				fmt.Println()
			}
		}
	}

	start := time.Now()
	if err := b.copyManifest(ctx, bucket, first, filesBackups-2); err != nil {
		fail("rebuild", fmt.Errorf("copies of the manifest: %w", err))
		return nil
	}
	copied := time.Since(start)
	if _, ok = step("rebuild", "index", "rebuild"); ok {
		fmt.Printf(" (after %d copies of the manifest in %s)\n", filesBackups-2, copied.Round(time.Millisecond))
	}
	if err := b.checkSummaries(ctx, root); err != nil {
		fail("list", err)
	} else if m, ok = step("list", "list", "--output", "json"); ok {
		var list []struct{ ID, Status string }
		if err := json.Unmarshal(m.stdout, &list); err != nil || len(list) != filesBackups {
			fail("list", fmt.Errorf("list shows %d backups, want %d: %v", len(list), filesBackups, err))
		} else {
			sec.filesRow(n, "list").Info = map[string]any{"backups": len(list)}
			fmt.Printf(", %d backups\n", len(list))
		}
	}

	if m, ok = step("purge", "purge", "--keep-last", "1", "--output", "json"); ok {
		type report struct {
			Kept    []json.RawMessage `json:"kept"`
			Removed []json.RawMessage `json:"removed"`
			Objects int               `json:"objects_kept"`
		}
		var reps []report // one per node
		err := json.Unmarshal(m.stdout, &reps)
		if err == nil && len(reps) != 1 {
			err = fmt.Errorf("%d node reports, want 1", len(reps))
		}
		var rep report
		if err == nil {
			rep = reps[0]
		}
		if err != nil || len(rep.Kept) != 1 || len(rep.Removed) != filesBackups-1 {
			fail("purge", fmt.Errorf("purge kept %d and removed %d backups, want 1 and %d: %v", len(rep.Kept), len(rep.Removed), filesBackups-1, err))
		} else {
			sec.filesRow(n, "purge").Info = map[string]any{"kept": 1, "removed": len(rep.Removed), "objects_kept": rep.Objects}
			fmt.Printf(", removed %d backups\n", len(rep.Removed))
		}
	}
	return nil
}

// backupOutput is what the bench reads of `s3bak backup --output json`.
type backupOutput struct {
	ID            string `json:"backup_id"`
	Files         int    `json:"files"`
	RawBytes      int64  `json:"raw_bytes"`
	ReadBytes     int64  `json:"read_bytes"`
	StoredBytes   int64  `json:"stored_bytes"`
	UploadedBytes int64  `json:"uploaded_bytes"`
	Packs         int    `json:"packs"`
	Unread        int    `json:"unread_files"`
	Manifest      string `json:"manifest_key"`
}

func parseBackupOutput(stdout []byte) (*backupOutput, error) {
	var o backupOutput
	if err := json.Unmarshal(stdout, &o); err != nil {
		return nil, fmt.Errorf("backup --output json: %w: %s", err, oneLine(string(stdout), 200))
	}
	if o.ID == "" || o.Manifest == "" {
		return nil, fmt.Errorf("backup --output json names no backup id or manifest key: %s", oneLine(string(stdout), 200))
	}
	return &o, nil
}

// catalogBytes is what the node's catalog stores after its first backup:
// the manifest object, the checkpoints (none once the backup is complete)
// and the summaries.
func (b *bench) catalogBytes(ctx context.Context, root, manifestKey, bucket string) (map[string]any, error) {
	man, objs := b.du(ctx, "s3://"+bucket+"/"+manifestKey)
	if objs != 1 {
		return nil, fmt.Errorf("manifest s3://%s/%s: %d objects", bucket, manifestKey, objs)
	}
	ck, _ := b.du(ctx, root+"checkpoints/*")
	sum, _ := b.du(ctx, root+"backups.json.zst")
	return map[string]any{"manifest_bytes": man, "checkpoint_bytes": ck, "summaries_bytes": sum,
		"catalog_bytes": man + ck + sum}, nil
}

// du is the bytes and objects under an s3:// URL (a key or a wildcard),
// by s5cmd du; 0 when there is none.
func (b *bench) du(ctx context.Context, url string) (int64, int) {
	m, err := b.run(ctx, b.s5cmd("du", url))
	if err != nil {
		return 0, 0
	}
	g := duRE.FindSubmatch(bytes.TrimSpace(m.stdout))
	if g == nil {
		return 0, 0
	}
	return toInt64(g[1]), int(toInt64(g[2]))
}

func toInt64(b []byte) int64 {
	var n int64
	for _, c := range b {
		n = n*10 + int64(c-'0')
	}
	return n
}

// checkSummaries checks that the node's summaries name every manifest, so
// that list reads the summaries object and no manifest.
func (b *bench) checkSummaries(ctx context.Context, root string) error {
	m, err := b.run(ctx, b.s5cmd("cat", root+"backups.json.zst"))
	if err != nil {
		return fmt.Errorf("read the summaries: %w", err)
	}
	raw, err := chunk.Inflate(m.stdout, 256<<20)
	if err != nil {
		return fmt.Errorf("the summaries: %w", err)
	}
	var sums []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &sums); err != nil {
		return fmt.Errorf("the summaries: %w", err)
	}
	known := map[string]bool{}
	for _, s := range sums {
		known[s.ID] = true
	}
	m, err = b.run(ctx, b.s5cmd("ls", root+"backups/*"))
	if err != nil {
		return fmt.Errorf("list the manifests: %w", err)
	}
	manifests := 0
	for _, line := range strings.Split(strings.TrimSpace(string(m.stdout)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		manifests++
		id := strings.TrimSuffix(path.Base(f[len(f)-1]), ".json")
		if !known[id] {
			return fmt.Errorf("the summaries lack backup %s: list would read its manifest", id)
		}
	}
	if manifests != filesBackups {
		return fmt.Errorf("%d manifests, want %d", manifests, filesBackups)
	}
	return nil
}

// loadAvg is the machine's 1-minute load average: on a shared machine it
// says whether others competed for the CPUs meanwhile.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
