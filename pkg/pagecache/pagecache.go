// Package pagecache lets a reader of cold files leave the page cache as it
// found it. A backup reads a whole node's sstables once; read through the
// page cache they would evict the pages the database itself serves from
// (its hot sstables, which a snapshot hard-links). The reader notes which
// of a file's pages were cached before it read them, and afterwards
// drops those it brought in, and only those.
package pagecache

import (
	"fmt"
	"io"
	"syscall"

	"github.com/s3bak/s3bak/pkg/eintr"
)

// Resident is the part of a file that was in the page cache before it
// was read: byte ranges, merged, few for a whole file.
type Resident struct {
	ranges [][2]int64
	ok     bool // false: unknown, and Drop drops nothing
}

// window is how much of a file is mapped at once to ask which pages are
// cached: a map of its own, one byte a page, of 64 KiB.
const window = 256 << 20

// SmallFile is the largest file ReadSmall reads: a few pages, where
// dropping a page that was cached costs the database little.
const SmallFile = 64 << 10

// Bytes is how much of the file was cached (0 when unknown).
func (r *Resident) Bytes() int64 {
	var n int64
	for _, rg := range r.ranges {
		n += rg[1] - rg[0]
	}
	return n
}

// readAt reads len(p) bytes from the start of fd, as os.File.ReadAt does
// (ReadSmall's callers open small files without an os.File, two system
// calls fewer a file).
func readAt(fd int, p []byte) error {
	for off := 0; off < len(p); {
		var n int
		err := eintr.Retry(func() (err error) {
			n, err = syscall.Pread(fd, p[off:], int64(off))
			return err
		})
		switch {
		case err != nil:
			return fmt.Errorf("read: %w", err)
		case n == 0:
			return fmt.Errorf("read: the file is shorter than %d bytes: %w", len(p), io.ErrUnexpectedEOF)
		}
		off += n
	}
	return nil
}
