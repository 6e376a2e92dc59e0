//go:build linux

package pagecache

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// cached is how many bytes of f's first size bytes are in the page cache.
func cached(t *testing.T, f *os.File, size int64) int64 {
	t.Helper()
	r := mapped(int(f.Fd()), size) // mincore, not Before's cachestat
	if !r.ok {
		t.Fatal("mincore failed")
	}
	return r.Bytes()
}

// coldFile writes content to a new file named name and opens it with none
// of it cached, or skips the test where the file system keeps dropped pages
// (tmpfs): there a drop cannot be observed.
func coldFile(t *testing.T, name string, content []byte) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.Sync()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	if n := cached(t, f, int64(len(content))); n > 0 {
		t.Skipf("%d bytes still cached after FADV_DONTNEED: this file system keeps them (tmpfs?)", n)
	}
	return f
}

// TestDropLeavesTheCacheAsItWas: of a file read whole, the pages that were
// cached before the read stay cached and the others are dropped — a
// backup neither keeps what it read in the cache nor evicts what the
// database had there.
func TestDropLeavesTheCacheAsItWas(t *testing.T) {
	const size, hot = 8<<20 + 123, 1 << 20
	p := filepath.Join(t.TempDir(), "nb-1-big-Data.db")
	if err := os.WriteFile(p, bytes.Repeat([]byte("sstable "), size/8+1)[:size], 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err == nil {
		unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	}
	if n := cached(t, f, size); n > hot {
		t.Skipf("%d bytes still cached after FADV_DONTNEED: this file system keeps them (tmpfs?), the test cannot observe a drop", n)
	}
	// The database's hot part: its first MiB.
	if _, err := f.ReadAt(make([]byte, hot), 0); err != nil {
		t.Fatal(err)
	}
	before := Before(f, size)
	was := before.Bytes() // the read's readahead may have cached more than it read
	if was < hot {
		t.Fatalf("%d bytes cached after reading %d", was, hot)
	}
	if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, size)); err != nil {
		t.Fatal(err)
	}
	if n := cached(t, f, size); n < size {
		t.Logf("%d of %d bytes cached after a whole read", n, size)
	}
	before.Drop(f, size)
	if n := cached(t, f, size); n < hot || n > was {
		t.Fatalf("%d bytes cached after Drop, want the %d that were before", n, was)
	}
	// A file never cached before: nothing of it stays.
	cold := Before(f, 0)
	cold.Drop(f, size)
	if n := cached(t, f, size); n != 0 {
		t.Fatalf("%d bytes cached after dropping a whole file", n)
	}
}

// TestReadSmallLeavesTheCacheAsItWas: a tiny file read with ReadSmall is
// cached afterwards exactly as before — not at all, whole, or its first
// page only (the partly cached file takes mincore's way).
func TestReadSmallLeavesTheCacheAsItWas(t *testing.T) {
	page := int64(os.Getpagesize())
	size := 3*page + 100
	for _, hot := range []int64{0, page, size} {
		want := bytes.Repeat([]byte("stats "), int(size)/6+1)[:size]
		f := coldFile(t, "nb-1-big-Statistics.db", want)
		if hot > 0 {
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM) // no readahead past the hot part
			if _, err := f.ReadAt(make([]byte, hot), 0); err != nil {
				t.Fatal(err)
			}
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_NORMAL)
		}
		before := cached(t, f, size)
		t.Logf("hot %d of %d bytes: %d cached before ReadSmall", hot, size, before)
		got := make([]byte, size)
		if err := ReadSmall(int(f.Fd()), got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("hot %d: ReadSmall read other bytes (%v)", hot, err)
		}
		if after := cached(t, f, size); after != before {
			t.Errorf("hot %d bytes: %d bytes cached before ReadSmall, %d after", hot, before, after)
		}
	}
}

// TestBeforeTellsWholeAndNone: a file cached whole, or not at all, which
// Before tells from cachestat without mapping it, is left so by Drop after
// a whole read; a file partly cached is TestDropLeavesTheCacheAsItWas's.
func TestBeforeTellsWholeAndNone(t *testing.T) {
	const size = 4<<20 + 321
	for _, whole := range []bool{false, true} {
		f := coldFile(t, "nb-2-big-Data.db", bytes.Repeat([]byte("sstable "), size/8+1)[:size])
		if whole {
			if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, size)); err != nil {
				t.Fatal(err)
			}
		}
		was := cached(t, f, size)
		if whole && was != size {
			t.Fatalf("%d of %d bytes cached after a whole read", was, size)
		}
		r := Before(f, size)
		if !r.ok || r.Bytes() != was {
			t.Fatalf("whole %v: Before says %d bytes cached (known %v), mincore %d", whole, r.Bytes(), r.ok, was)
		}
		if _, err := io.Copy(io.Discard, io.NewSectionReader(f, 0, size)); err != nil {
			t.Fatal(err)
		}
		r.Drop(f, size)
		if n := cached(t, f, size); n != was {
			t.Fatalf("whole %v: %d bytes cached after Drop, %d before", whole, n, was)
		}
	}
}
