package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/source"
)

// largeFiles writes files of the given contents into one directory and
// returns them as a set.
func largeFiles(t *testing.T, contents map[string][]byte) *source.Set {
	t.Helper()
	dir := t.TempDir()
	set := &source.Set{Kind: "cassandra", Tag: "t"}
	for _, name := range slices.Sorted(maps.Keys(contents)) {
		b := contents[name]
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		set.Files = append(set.Files, source.File{Path: "ks/t-1/" + name, Dir: dir, Name: name, Size: fi.Size(), Mode: 0o644, ModTime: fi.ModTime(), Ino: fi.Sys().(*syscall.Stat_t).Ino})
	}
	return set
}

// halfRandom is n bytes of which every other 4 KiB is random: compressible
// by half, distinct per seed.
func halfRandom(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		if (i/4096)%2 == 0 {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

// readBytes is what this process has read so far (rchar: every read and
// pread, files and sockets).
func readBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatalf("the bytes read need /proc/self/io: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestLargeFileOfANewSizeIsReadOnce: a large file whose size no stored
// content has cannot be a duplicate, so the backup reads it once — hashing
// while it compresses and uploads, under a random key — instead of a
// hashing read and then a second one. The record still holds its SHA-256:
// the restore checks it, and the next backup finds the content by it (a
// copy under another name, same size, is not stored again) while a file
// of that size with other bytes is hashed first and stored under its own
// name.
func TestLargeFileOfANewSizeIsReadOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const size = 24<<20 + 4321
	data := halfRandom(size, 1)
	e, _, _ := engine(t, "one-pass", nil, 2, 4)
	before := readBytes(t)
	res, err := e.RunLocked(ctx, largeFiles(t, map[string][]byte{"nb-1-big-Data.db": data}), SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	read := readBytes(t) - before
	t.Logf("backup of a %d-byte file read %d bytes (files and sockets)", size, read)
	if read >= size*3/2 {
		t.Fatalf("the backup read %d bytes for a %d-byte file: it was read twice", read, size)
	}
	m := stored(t, e, res)
	f := m.Files[0]
	if !strings.HasPrefix(baseName(f.Key), "u-") || f.SHA256 != sha(data) {
		t.Fatalf("record key %s sha %s: want a random (u-) key and the file's SHA-256 %s", f.Key, f.SHA256, sha(data))
	}
	target := t.TempDir()
	if _, err := restore.Run(ctx, client, e.opts.Node, m, restore.Options{Target: target}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(target, f.Path)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored file differs (%v)", err)
	}

	other := halfRandom(size, 2)
	e2, _, _ := engine(t, "one-pass", nil, 2, 4)
	res2, err := e2.RunLocked(ctx, largeFiles(t, map[string][]byte{"nb-2-big-Data.db": data, "nb-3-big-Data.db": other}), SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]manifest.File{}
	for _, g := range stored(t, e2, res2).Files {
		byName[filepath.Base(g.Path)] = g
	}
	if c := byName["nb-2-big-Data.db"]; c.Key != f.Key {
		t.Errorf("a copy of the stored content got object %s, want the stored %s", c.Key, f.Key)
	}
	o := byName["nb-3-big-Data.db"]
	if o.SHA256 != sha(other) || o.Key != manifest.ObjectKey(o.SHA256, true, 1<<20) {
		t.Errorf("other bytes of the same size: key %s sha %s, want the content-named key of %s", o.Key, o.SHA256, sha(other))
	}
	if res2.Uploaded != 1 || res2.Reused != 1 {
		t.Errorf("second backup uploaded %d and reused %d, want 1 and 1", res2.Uploaded, res2.Reused)
	}
}

// TestEqualLargeFilesInOneRunAreStoredOnce: two files of the same new size
// in one run are not both stored in one pass: the second waits for the
// first, is hashed, and shares its object when the bytes are the same.
func TestEqualLargeFilesInOneRunAreStoredOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := halfRandom(6<<20+99, 4)
	e, _, _ := engine(t, "one-pass-twins", nil, 2, 4)
	res, err := e.RunLocked(ctx, largeFiles(t, map[string][]byte{"nb-1-big-Data.db": data, "nb-2-big-Data.db": data}), SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fs := stored(t, e, res).Files
	if len(fs) != 2 || fs[0].Key != fs[1].Key || res.Uploaded != 1 {
		t.Fatalf("two equal files: keys %s and %s, %d uploaded; want one object", fs[0].Key, fs[len(fs)-1].Key, res.Uploaded)
	}
}

func baseName(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// TestOnePassResumeChecksTheStoredChunks: a file read once has no earlier
// read to compare the chunks of its partial upload with, so the next run
// reads them again: when they changed (bytes rewritten, size and mtime
// kept, so the fingerprint still matches) it starts over, and the stored
// file is the new one, its SHA-256 right.
func TestOnePassResumeChecksTheStoredChunks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := halfRandom(40<<20+7, 5)
	set := largeFiles(t, map[string][]byte{"nb-1-big-Data.db": data})
	f := set.Files[0]
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	e, _, _ := engine(t, "one-pass-resume", nil, 2, 4)
	e.opts.Progress = &cancelAfter{n: int64(len(data)) * 3 / 4, cancel: stop}
	if _, err := e.RunLocked(runCtx, set, SessionOptions{}); err == nil {
		t.Fatal("the interrupted run succeeded")
	}
	ps := partials(t, e.opts.Node)
	if len(ps) != 1 {
		t.Fatalf("%d partial uploads recorded, want 1", len(ps))
	}
	for _, p := range ps {
		if p.Fingerprint != f.Fingerprint() || len(p.Chunks) == 0 {
			t.Fatalf("partial upload: fingerprint %q, %d chunks; want the file's %q and some chunks", p.Fingerprint, len(p.Chunks), f.Fingerprint())
		}
	}
	data[100] ^= 0xff // in the first chunk, which the partial upload holds
	if err := os.WriteFile(f.Abs(), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f.Abs(), f.ModTime, f.ModTime); err != nil {
		t.Fatal(err)
	}
	e2, _, _ := engine(t, "one-pass-resume", nil, 2, 4)
	res, err := e2.RunLocked(ctx, set, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := stored(t, e2, res)
	if m.Files[0].SHA256 != sha(data) {
		t.Fatalf("recorded SHA-256 %s, want the rewritten file's %s", m.Files[0].SHA256, sha(data))
	}
	target := t.TempDir()
	if _, err := restore.Run(ctx, client, e2.opts.Node, m, restore.Options{Target: target}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(target, f.Path)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored file is not the rewritten one (%v)", err)
	}
}
