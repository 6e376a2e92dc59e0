package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
