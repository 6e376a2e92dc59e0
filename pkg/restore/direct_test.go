package restore

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// directSupported reports whether dir's file system takes O_DIRECT, so
// that a test on one that refuses it says so instead of passing silently.
func directSupported(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, ".probe"), os.O_CREATE|os.O_WRONLY|unix.O_DIRECT, 0o600)
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	defer f.Close()
	_, err = f.WriteAt(alignedBytes(align, align), 0)
	return err == nil
}

// TestFileWriterWritesEveryByte writes pieces aligned and not (in memory
// and on disk, whole pages and tails) in a scrambled order, and checks the
// file holds exactly the bytes written, whichever path each piece took.
func TestFileWriterWritesEveryByte(t *testing.T) {
	dir := t.TempDir()
	want := mixedData(5*align*8+1234, 7)
	type piece struct{ off, n int }
	for _, tc := range []struct {
		name    string
		pieces  []piece
		shift   int // buffer starts this far past an aligned address
		direct  bool
		bypass  bool // some bytes must go around the page cache
		aligned bool
	}{
		{"aligned chunks, short last", []piece{{0, 8 * align}, {8 * align, 8 * align}, {16 * align, 24*align + 1234}}, 0, true, true, true},
		{"unaligned tail inside a chunk", []piece{{0, 8*align + 100}, {8*align + 100, len(want) - 8*align - 100}}, 0, true, true, false},
		{"unaligned buffers", []piece{{0, 20 * align}, {20 * align, len(want) - 20*align}}, 1, true, false, true},
		{"smaller than a page", []piece{{0, 100}, {100, len(want) - 100}}, 0, true, true, false},
		{"buffered", []piece{{0, 8 * align}, {8 * align, len(want) - 8*align}}, 0, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.CreateTemp(dir, "w")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var reopen func(int) (*os.File, error)
			if tc.direct {
				reopen = func(flag int) (*os.File, error) { return os.OpenFile(f.Name(), flag, 0) }
			}
			w := newFileWriter(f, reopen)
			order := rand.New(rand.NewPCG(1, 2)).Perm(len(tc.pieces))
			for _, i := range order {
				p := tc.pieces[i]
				buf := alignedBytes(p.n+tc.shift, p.n+tc.shift)[tc.shift:]
				copy(buf, want[p.off:p.off+p.n])
				if n, err := w.WriteAt(buf, int64(p.off)); err != nil || n != p.n {
					t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", p.n, p.off, n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(f.Name())
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("file holds %d bytes (%v), not the %d written", len(got), err, len(want))
			}
			if tc.bypass && directSupported(t, dir) && !w.usedDirect() {
				t.Fatalf("no byte went around the page cache on a file system that takes O_DIRECT")
			}
			if !tc.direct && w.usedDirect() {
				t.Fatalf("O_DIRECT used though not asked for")
			}
		})
	}
}

// usedDirect reports whether the writer sent bytes around the page cache.
func (w *fileWriter) usedDirect() bool { return w.direct != nil && !w.failed.Load() }

// residentPages counts the pages of path in the page cache (mincore).
func residentPages(t *testing.T, path string) (resident, total int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}

// TestRestoreKeepsLargeFilesOutOfThePageCache restores a multi-chunk file
// and checks that, by default, its pages did not go through the page cache
// (a restore onto a live node must not evict the database's cached data),
// while Buffered writes them through it; both restores are byte-exact.
func TestRestoreKeepsLargeFilesOutOfThePageCache(t *testing.T) {
	node := testNode(t)
	raw := mixedData(6<<20+777, 3)
	f, _ := store(t, node, "ks/t-1/nb-1-big-Data.db", raw, chunk.Auto, 1<<20)
	if !directSupported(t, t.TempDir()) {
		t.Skip("the test directory's file system refuses O_DIRECT; the page-cache bypass cannot be observed here")
	}
	for _, buffered := range []bool{false, true} {
		target := t.TempDir()
		if _, err := Run(context.Background(), client, node, backupOf(node, f), Options{Target: target, Buffered: buffered}); err != nil {
			t.Fatal(err)
		}
		// Before anything reads the file back, which would cache it.
		resident, total := residentPages(t, filepath.Join(target, f.Path))
		switch {
		case !buffered && resident > 1: // the tail's page is written through the cache
			t.Errorf("default restore: %d of %d pages in the page cache, want at most the tail's", resident, total)
		case buffered && resident < total*9/10:
			t.Errorf("buffered restore: only %d of %d pages in the page cache; the measurement is off", resident, total)
		}
		checkTree(t, target, map[string][]byte{f.Path: raw})
	}
}

// TestBuffersReuseAndAlign checks that buffers come aligned, that a given
// back one serves the next request it is large enough for, the smallest
// first, and that the pool keeps no more than its limit.
func TestBuffersReuseAndAlign(t *testing.T) {
	b := newBuffers(capacity(2<<20) + capacity(1<<20)) // room for these two
	big, small := b.get(2<<20), b.get(1<<20)
	for _, x := range []*[]byte{big, small} {
		if !isAligned(*x) {
			t.Fatalf("buffer of %d bytes is not aligned", len(*x))
		}
	}
	b.put(big)
	b.put(small)
	if got := b.get(100 << 10); got != small || len(*got) != 100<<10 {
		t.Fatalf("a 100 KiB request did not get the smallest idle buffer")
	}
	if got := b.get(2 << 20); got != big || len(*got) != 2<<20 {
		t.Fatalf("a 2 MiB request did not reuse the 2 MiB buffer")
	}
	b.put(big)
	b.put(small)
	if c := capacity(8<<20 + 207); c != capacity(8<<20) || c != capacity(8<<20+200<<10) {
		t.Fatalf("capacity %d for a chunk of raw blocks, %d for its raw bytes, %d for a pack's run: want one size", c, capacity(8<<20), capacity(8<<20+200<<10))
	}
	extra := alignedBytes(2<<20, 2<<20)
	b.put(&extra) // over the limit: not kept
	tiny := alignedBytes(100, 100)
	b.put(&tiny) // too small to keep
	if len(b.free) != 2 || b.kept > b.max {
		t.Fatalf("pool holds %d buffers of %d bytes (limit %d), want the first two", len(b.free), b.kept, b.max)
	}
}
