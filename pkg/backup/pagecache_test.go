//go:build linux

package backup

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/pagecache"
)

// TestBackupLeavesThePageCacheAsItWas: a backup reads every file of a
// snapshot (a large one twice when its size is stored already), yet afterwards the files that were not in
// the page cache are still not, and the one the database had cached still
// is — measured with mincore.
func TestBackupLeavesThePageCacheAsItWas(t *testing.T) {
	set := writeSet(t, 1, 3<<20+77, 20)
	open := func(p string) *os.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	for _, f := range set.Files {
		fh := open(f.Abs())
		fh.Sync()
		unix.Fadvise(int(fh.Fd()), 0, 0, unix.FADV_DONTNEED)
		if n := pagecache.Before(fh, f.Size).Bytes(); n > 0 {
			t.Skipf("%s: %d bytes still cached after FADV_DONTNEED: this file system keeps them (tmpfs?)", f.Abs(), n)
		}
	}
	// The database's hot files: a large one and a tiny one (which the
	// backup reads with pagecache.ReadSmall).
	hot := map[string]bool{set.Files[0].Abs(): true, set.Files[1].Abs(): true}
	for _, f := range set.Files[:2] {
		if _, err := open(f.Abs()).ReadAt(make([]byte, f.Size), 0); err != nil {
			t.Fatal(err)
		}
	}
	e, _, _ := engine(t, "page-cache", nil, 2, 4)
	if _, err := e.Run(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	for _, f := range set.Files {
		n := pagecache.Before(open(f.Abs()), f.Size).Bytes()
		switch {
		case hot[f.Abs()] && n < f.Size:
			t.Errorf("the database's cached file %s: %d of %d bytes cached after the backup", f.Path, n, f.Size)
		case !hot[f.Abs()] && n > 0:
			t.Errorf("%s (%d bytes) was not cached before the backup, %d bytes are after it", f.Path, f.Size, n)
		}
	}
}
