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
	r := Before(f, size)
	if !r.ok {
		t.Fatal("mincore failed")
	}
	return r.Bytes()
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
