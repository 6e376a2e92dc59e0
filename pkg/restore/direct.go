package restore

import (
	"errors"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// directMin is the smallest file written with O_DIRECT: below it, the
// extra open costs more than the copy it saves.
const directMin = 1 << 20

// fileWriter writes a restored file's bytes at their offsets. Large
// aligned writes bypass the page cache (O_DIRECT): the bytes are not copied
// into the kernel (the largest CPU cost of a restore), and a restore of
// hundreds of gigabytes onto a live node does not evict the database's
// cached pages. The unaligned tail of a write goes through the page cache,
// on a page of its own. A file system that refuses O_DIRECT (at open, or
// with EINVAL on a write) gets every byte through the page cache.
type fileWriter struct {
	f      *os.File
	direct *os.File // nil when not used
	failed atomic.Bool
}

// newFileWriter writes into f, and opens f's file a second time with
// O_DIRECT, with reopen, when reopen is not nil.
func newFileWriter(f *os.File, reopen func(flag int) (*os.File, error)) *fileWriter {
	w := &fileWriter{f: f}
	if reopen != nil {
		if d, err := reopen(os.O_WRONLY | unix.O_DIRECT); err == nil {
			w.direct = d
		}
	}
	return w
}

func (w *fileWriter) WriteAt(p []byte, off int64) (int, error) {
	n := len(p) &^ (align - 1)
	if w.direct == nil || w.failed.Load() || off%align != 0 || n == 0 || !isAligned(p) {
		return w.f.WriteAt(p, off)
	}
	if _, err := w.direct.WriteAt(p[:n], off); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			return 0, err
		}
		w.failed.Store(true)
		return w.f.WriteAt(p, off)
	}
	if n == len(p) {
		return n, nil
	}
	m, err := w.f.WriteAt(p[n:], off+int64(n))
	return n + m, err
}

// Close closes the O_DIRECT descriptor; the caller closes the file.
func (w *fileWriter) Close() error {
	if w.direct == nil {
		return nil
	}
	return w.direct.Close()
}
