package main

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The bench is a program (make bench); these check the parts whose
// mistakes would make it time a broken run as a fast one.

// TestMain lets the test binary be the spawner, as the bench binary is.
func TestMain(m *testing.M) {
	if os.Getenv(spawnEnv) == "1" {
		spawnerMain()
		return
	}
	os.Exit(m.Run())
}

func TestVerifyTreeCatchesEveryDifference(t *testing.T) {
	dir := t.TempDir()
	p := planSmall(12, rand.New(rand.NewPCG(1, 1)))
	tr, err := writeTree(filepath.Join(dir, "src"), p, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyTree(tr.dataDir, tr.files); err != nil {
		t.Fatalf("the source itself: %v", err)
	}
	var some string
	for rel := range tr.files {
		some = filepath.Join(tr.dataDir, filepath.FromSlash(rel))
		break
	}
	b, _ := os.ReadFile(some)
	b[len(b)/2] ^= 1
	breakages := map[string]func() error{
		"SHA-256 differs": func() error { return os.WriteFile(some, b, 0o644) },
		"missing":         func() error { return os.Remove(some) },
		"unexpected file": func() error { return os.WriteFile(filepath.Join(tr.dataDir, "extra"), nil, 0o644) },
		"bytes, want":     func() error { return os.WriteFile(some, b[:len(b)-1], 0o644) },
	}
	for want, breakIt := range breakages {
		if err := breakIt(); err != nil {
			t.Fatal(err)
		}
		err := verifyTree(tr.dataDir, tr.files)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("after %q: %v", want, err)
		}
		os.RemoveAll(tr.dataDir)
		tr, _ = writeTree(tr.dataDir, planSmall(12, rand.New(rand.NewPCG(1, 1))), 1)
	}
}

func TestGeneratedTreeIsDeterministicAndDiscoverable(t *testing.T) {
	dir := t.TempDir()
	a, err := writeTree(filepath.Join(dir, "a"), planDefault(4<<20, 60, rand.New(rand.NewPCG(7, 1))), 7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := writeTree(filepath.Join(dir, "b"), planDefault(4<<20, 60, rand.New(rand.NewPCG(7, 1))), 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.files) != len(b.files) || a.bytes != b.bytes {
		t.Fatalf("two trees of one seed differ: %d/%d files, %d/%d bytes", len(a.files), len(b.files), a.bytes, b.bytes)
	}
	for rel, s := range a.files {
		if b.files[rel] != s {
			t.Fatalf("%s differs between two trees of one seed", rel)
		}
		parts := strings.Split(rel, "/")
		if len(parts) != 5 || parts[2] != "snapshots" || parts[3] != "bench" || len(parts[1]) < 34 {
			t.Fatalf("%s is not <keyspace>/<table>-<id>/snapshots/<tag>/<file>", rel)
		}
	}
}

func TestSizeFlagsAndBackupLog(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil || cfg.size != 1<<30 || cfg.big != 4<<30 {
		t.Fatalf("defaults: -size %d, -big %d, %v", cfg.size, cfg.big, err)
	}
	cfg, err = parseFlags([]string{"-size", "64MiB", "-big", "1GB"})
	if err != nil || cfg.size != 64<<20 || cfg.big != 1e9 {
		t.Fatalf("-size 64MiB -big 1GB: %d, %d, %v", cfg.size, cfg.big, err)
	}
	for _, bad := range []string{"0", "lots", "4Gi"} {
		if _, err := parseFlags([]string{"-size", bad}); err == nil || !strings.Contains(err.Error(), "-size") {
			t.Errorf("-size %s: %v; want an error naming the flag", bad, err)
		}
	}
	log := `{"level":"INFO","msg":"preflight passed"}
{"level":"INFO","msg":"backup complete","id":"20260101T000000Z","files":3,"uploaded_objects":2,"uploaded_bytes":99,"reused":1,"unread":0}`
	st, err := parseBackupLog([]byte(log))
	if err != nil || st.ID != "20260101T000000Z" || st.UploadedBytes != 99 || st.UploadedObjects != 2 {
		t.Fatalf("parseBackupLog: %+v, %v", st, err)
	}
}

// TestSpawnerRSSFloor: a child started through the spawner does not carry
// the bench's RSS (Linux counts the forking process's RSS into the child's
// ru_maxrss).
func TestSpawnerRSSFloor(t *testing.T) {
	hold := make([]byte, 300<<20)
	for i := range hold {
		hold[i] = 1
	}
	b := &bench{env: os.Environ()}
	m, err := b.run(t.Context(), cmd("/bin/sh", "-c", "exit 0"), cmd("/bin/cat"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.stageRSS) != 2 || m.rss > 64<<20 || m.rss == 0 {
		t.Fatalf("peak RSS %d bytes (stages %v) while the parent holds %d MiB", m.rss, m.stageRSS, len(hold)>>20)
	}
	t.Logf("floor: %v bytes", m.stageRSS)
}

func TestFilesFlag(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil || !slices.Equal(cfg.files, []int{40000}) || !slices.Contains(allSections, "files") {
		t.Fatalf("defaults: -files %v, sections %v, %v", cfg.files, allSections, err)
	}
	cfg, err = parseFlags([]string{"-files", "200000, 8000,40000,1_000_000,8000"})
	if err != nil || !slices.Equal(cfg.files, []int{8000, 40000, 200000, 1000000}) {
		t.Fatalf("-files 200000,8000,40000,1_000_000,8000: %v, %v", cfg.files, err)
	}
	for _, bad := range []string{"", "7", "lots", "8000,-1", ","} {
		if _, err := parseFlags([]string{"-files", bad}); err == nil || !strings.Contains(err.Error(), "-files") {
			t.Errorf("-files %q: %v; want an error naming the flag", bad, err)
		}
	}
	p := planFiles(8*20+5, rand.New(rand.NewPCG(1, 6)))
	if len(p.specs) != 160 || len(p.tables) != 20 {
		t.Fatalf("planFiles(165): %d files in %d tables, want 160 in 20", len(p.specs), len(p.tables))
	}
	for _, s := range p.specs {
		if s.size < 1<<10 || s.size > 6<<10 || !strings.HasPrefix(s.rel, "telemetry/") || !strings.Contains(s.rel, "/snapshots/bench/nb-") {
			t.Fatalf("%s: %d bytes", s.rel, s.size)
		}
	}
	dir := t.TempDir()
	a, err := writeTreeParallel(filepath.Join(dir, "a"), p, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := writeTree(filepath.Join(dir, "b"), planFiles(165, rand.New(rand.NewPCG(1, 6))), 3)
	if err != nil || !maps.Equal(a.files, b.files) || a.bytes != b.bytes {
		t.Fatalf("writeTreeParallel and writeTree differ (%d/%d files): %v", len(a.files), len(b.files), err)
	}
}

func TestFilesTargets(t *testing.T) {
	s := &section{Name: "files"}
	add := func(n int, op string, wall, rss float64, info map[string]any) {
		r := s.filesRow(n, op)
		r.Runs, r.PeakRSSMiB = []roundRun{{Round: 1, WallS: wall, RSSMiB: rss}}, 0
		r.Info = info
		r.finish()
	}
	for _, n := range []int{40000, 200000} {
		for _, st := range filesSteps {
			add(n, st.op, 0.2, 50, nil)
		}
	}
	add(40000, "backup", 2, 100, map[string]any{"files_per_s": 20000.0, "catalog_bytes_per_file": 80.0})
	add(200000, "backup", 12, 300, map[string]any{"files_per_s": 16666.7, "catalog_bytes_per_file": 130.0})
	add(200000, "restore", 10, 100, map[string]any{"files_per_s": 20000.0})
	add(200000, "list", 0.7, 20, nil)
	got := map[string]*bool{}
	for _, tg := range filesTargets(s) {
		got[tg.Name] = tg.Met
	}
	no, yes := false, true
	want := map[string]*bool{
		"files: peak RSS ≤ 256 MiB, every command (40000 files), largest: s3bak backup":  &yes,
		"files: peak RSS ≤ 256 MiB, every command (200000 files), largest: s3bak backup": &no,
		"files: backup time per file at 200000 files ≤ 1.5× that at 40,000":              &yes, // 1.2×
		"files: backup ≥ 20000 files/s (200000 files)":                                   &no,
		"files: restore ≥ 10000 files/s (200000 files)":                                  &yes,
		"files: second backup, unchanged, ≤ 30 s at 1,000,000 files":                     nil,
		"files: list (100 backups) ≤ 0.5 s, every N":                                     &no,
		"files: list (100 backups) peak RSS ≤ 64 MiB, every N":                           &yes,
		"files: catalog ≤ 120 bytes per file, every N":                                   &no,
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("no target %q in %v", name, got)
			continue
		}
		if (g == nil) != (w == nil) || (g != nil && *g != *w) {
			t.Errorf("%s: met %v, want %v", name, ptr(g), ptr(w))
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d targets, want %d", len(got), len(want))
	}
	for _, tg := range filesTargets(nil) {
		if tg.Met != nil || tg.Note != "section not run" {
			t.Errorf("section not run: %+v", tg)
		}
	}
}

func ptr(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func TestManifestCopyHeader(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	head := []byte(`{"schema":3,"id":"20261130T150000Z.123","started":"2026-11-30T15:00:00.123Z","finished":"2026-11-30T15:00:02Z"}` + "\n")
	first := enc.EncodeAll(head, nil)
	body := append(slices.Clone(first), enc.EncodeAll(bytes.Repeat([]byte(`{"p":"a"}`+"\n"), 5000), nil)...)
	n, err := zstdFrameLen(body)
	if err != nil || n != len(first) {
		t.Fatalf("zstdFrameLen: %d, %v; want %d", n, err, len(first))
	}
	if _, err := zstdFrameLen(first[:len(first)-1]); err == nil {
		t.Error("a frame cut short was measured")
	}
	at := time.Date(2020, 1, 1, 1, 0, 0, 0, time.UTC)
	old, _ := time.Parse(time.RFC3339Nano, "2026-11-30T15:00:00.123Z")
	nh, err := rewriteHeader(head, map[string][2]any{"id": {"20261130T150000Z.123", "20200101T010000Z.000"}, "started": {old, at}})
	want := `{"schema":3,"id":"20200101T010000Z.000","started":"2020-01-01T01:00:00Z","finished":"2026-11-30T15:00:02Z"}` + "\n"
	if err != nil || string(nh) != want {
		t.Fatalf("rewriteHeader: %s, %v", nh, err)
	}
	if _, err := rewriteHeader(head, map[string][2]any{"id": {"other", "x"}}); err == nil {
		t.Error("a field that is not there was rewritten")
	}
	sm, err := parseStreamManifest(body)
	if err != nil || sm.id != "20261130T150000Z.123" || !bytes.Equal(sm.rest, body[len(first):]) {
		t.Fatalf("parseStreamManifest: %+v, %v", sm, err)
	}
	defer sm.close()
	frame, err := sm.header("20200101T010000Z.000", at)
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	got, derr := dec.DecodeAll(frame, nil)
	want = `{"schema":3,"id":"20200101T010000Z.000","started":"2020-01-01T01:00:00Z","finished":"2020-01-01T01:00:01.877Z"}` + "\n"
	if err != nil || derr != nil || string(got) != want {
		t.Fatalf("header of the copy: %s, %v, %v", got, err, derr)
	}
	if _, err := parseStreamManifest(enc.EncodeAll([]byte(`{"id":"x"}`), nil)); err == nil {
		t.Error("a JSON manifest was taken for a stream manifest")
	}
}

// stealPct is the host's share of the machine's CPU time between two
// readings, and unknown (-1) when a reading failed or no time passed.
func TestStealPct(t *testing.T) {
	a := cpuTicks{busy: 100, steal: 10, total: 200}
	for _, tc := range []struct {
		name string
		b    cpuTicks
		ok   bool
		want float64
	}{
		{"a third stolen", cpuTicks{busy: 150, steal: 40, total: 290}, true, 33.3},
		{"none stolen", cpuTicks{busy: 190, steal: 10, total: 300}, true, 0},
		{"a reading failed", cpuTicks{busy: 150, steal: 40, total: 290}, false, -1},
		{"no time passed", a, true, -1},
	} {
		if got := stealPct(a, tc.b, tc.ok); got != tc.want {
			t.Errorf("%s: stealPct = %v, want %v", tc.name, got, tc.want)
		}
	}
}
