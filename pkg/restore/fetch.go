package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/eintr"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// fetch downloads one file into a temporary file next to its final place
// and verifies it; the temporary name (see tempName) starts with a dot and
// ends in ".s3bak-tmp", so nothing mistakes it for the real file, and a
// restore into the same target removes it if this one is killed.
func (r *restorer) fetch(ctx context.Context, f manifest.File) error {
	return r.stage(f, func(w io.WriterAt) error { return r.download(ctx, f, w, false) })
}

// stage writes a file into a temporary file next to its final place with
// write, and gives it its mode and time (see create and finish).
func (r *restorer) stage(f manifest.File, write func(io.WriterAt) error) error {
	tmp, err := r.create(f)
	if err != nil {
		return err
	}
	return r.finish(tmp, f, write)
}

// create creates f's temporary file, empty, open. Its name is r.tempOf
// the file's, or, in a staged directory (see staging), its own, in the
// directory's temporary place.
func (r *restorer) create(f manifest.File) (*tempFile, error) {
	final := filepath.FromSlash(f.Path)
	dir, name := split(final)
	dir, staged := r.staged.physDir(dir)
	if !staged {
		name = tempName(name, r.nonce)
	}
	if err := r.t.mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	perm := uint32(f.Mode.Perm())
	fd, exact, err := r.t.create(dir, name, perm)
	if err != nil {
		return nil, fmt.Errorf("create temporary file: %w", err)
	}
	return &tempFile{fd: fd, rel: filepath.Join(dir, name), perm: perm, exact: exact}, nil
}

// reopen opens a temporary file that create made and closed, again for
// writing: a lookup in a cached directory, where creating it took a new
// inode, which on some file systems costs far more (ext4 without a journal
// steps over every inode freed in the last half-minute, one by one).
func (r *restorer) reopen(tmp *tempFile) error {
	dir, name := split(tmp.rel)
	err := r.t.inDir(dir, func(h *dirHandle) error {
		return eintr.Retry(func() (err error) {
			tmp.fd, err = unix.Openat(h.fd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			return err
		})
	})
	if err != nil {
		tmp.fd = -1
	}
	return r.t.pathError("open", tmp.rel, err)
}

// finish writes a created temporary file with write, gives it its mode
// and time and closes it; on a failure it removes it.
// A small file costs five system calls on descriptors (openat, pwrite,
// futimens, close; fchmod when the umask would change its mode) and no
// allocation of an *os.File: a restore of a million sstable components
// is made of little else.
func (r *restorer) finish(tmp *tempFile, f manifest.File, write func(io.WriterAt) error) error {
	rel := tmp.rel
	defer func() {
		if tmp.fd >= 0 { // failed before its close
			tmp.close()
			r.t.remove(rel)
		}
	}()
	var err error
	if !r.opts.Buffered && f.Size >= directMin {
		err = r.writeLarge(tmp, rel, write)
	} else {
		err = write(tmp)
		if f.Size < writebackMin { // no writeback of its own (tempFile.WriteAt)
			r.flush.wrote(f.Size)
		}
	}
	if err != nil {
		return err
	}
	if !tmp.exact {
		if err := eintr.Retry(func() error { return unix.Fchmod(tmp.fd, tmp.perm) }); err != nil {
			return r.t.pathError("chmod", rel, err)
		}
	}
	// After the last write, which sets the time too.
	if err := futimens(tmp.fd, f.ModTime); err != nil {
		return r.t.pathError("chtimes", rel, err)
	}
	if err := tmp.close(); err != nil {
		r.t.remove(rel)
		return r.t.pathError("close", rel, err)
	}
	return nil
}

// writeLarge writes a large file through a fileWriter: its aligned bytes
// with O_DIRECT, on a second descriptor of the file.
func (r *restorer) writeLarge(tmp *tempFile, rel string, write func(io.WriterAt) error) error {
	tmp.f = os.NewFile(uintptr(tmp.fd), r.t.path(rel))
	w := newFileWriter(tmp.f, func(flag int) (*os.File, error) { return r.t.openFile(rel, flag, 0) })
	err := write(w)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}

// tempFile is a temporary file being written: a bare descriptor, or, for
// a large file, an *os.File that owns it; its path under the target, and
// the permissions it is to have (exact: it was created with them).
type tempFile struct {
	fd    int
	f     *os.File
	rel   string
	perm  uint32
	exact bool
}

// writebackMin: a write of at least this many bytes starts their
// writeback at once. The disk then writes while the network delivers, and
// the syncfs that makes the restore durable at the end finds little left:
// on the bench's 1 GiB node set it took half a second, as long as a third
// of the restore.
const writebackMin = 1 << 20

// WriteAt writes p at off, all of it: one pwrite for a small file.
func (t *tempFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := t.writeAt(p, off)
	if err == nil && n >= writebackMin {
		// Only a hint: it neither waits nor makes anything durable, and
		// an error it could report (EIO) the final syncfs reports.
		_ = unix.SyncFileRange(t.fd, off, int64(n), unix.SYNC_FILE_RANGE_WRITE)
	}
	return n, err
}

func (t *tempFile) writeAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Pwrite(t.fd, p[n:], off+int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

// close closes the descriptor, once.
func (t *tempFile) close() error {
	fd, f := t.fd, t.f
	t.fd, t.f = -1, nil
	if f != nil {
		return f.Close()
	}
	return unix.Close(fd) // never retried: the descriptor is gone either way
}

// futimens sets the access and modification times of the file open as fd
// to tm: utimensat(fd, NULL, …), which x/sys/unix has no call for. A zero
// tm leaves them, as os.Chtimes does.
func futimens(fd int, tm time.Time) error {
	if tm.IsZero() {
		return nil
	}
	ts := unix.NsecToTimespec(tm.UnixNano())
	times := [2]unix.Timespec{ts, ts}
	return eintr.Retry(func() error {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&times[0])), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
}

// download writes the file's bytes into w with parallel ranged GETs and
// checks their size and SHA-256. Unless sized (the caller checked it), a
// file of several groups has its object's size checked too, so that a
// chunk index that does not describe the object is never trusted; a file
// of one group proves its size with its GET.
func (r *restorer) download(ctx context.Context, f manifest.File, w io.WriterAt, sized bool) error {
	key := r.root + f.Key
	if f.Size == 0 && f.StoredSize == 0 {
		return r.verify(f, sha256.New(), 0, key) // empty files may have no object
	}
	chunks := layout(f)
	groups := plan(f, chunks, r.groupLimit())
	err := r.transfer(ctx, f, key, chunks, groups, w, len(groups) > 1 && !sized)
	var whole *wholeFileError
	if errors.As(err, &whole) && ctx.Err() == nil {
		// Only the file's SHA-256 checked the first read: it is read once
		// more before it is called corrupt, now with every chunk's CRC32C
		// checked, so that a chunk damaged on the way is read again alone
		// and one damaged in the bucket is named. (An uncompressed object
		// has no checksum per range: it is just read again.) Its size was
		// proven.
		for i := range groups {
			groups[i].crc = true
		}
		err = r.transfer(ctx, f, key, chunks, groups, w, false)
		if errors.As(err, &whole) {
			err = again(err)
		}
	}
	return err
}

// checkSize compares the object's size with the manifest's.
func (r *restorer) checkSize(ctx context.Context, f manifest.File, key string) error {
	info, err := r.c.Head(ctx, key)
	if errors.Is(err, transfer.ErrNotFound) {
		return fmt.Errorf("%w: object %s is missing", ErrVerify, key)
	}
	if err != nil {
		return err
	}
	return checkObjectSize(f, key, info.Size)
}

// checkObjectSize compares an object's size with what the manifest says of
// it: exactly the file's stored size, or, for a pack, at least up to the end
// of the file's stored bytes.
func checkObjectSize(f manifest.File, key string, size int64) error {
	if manifest.IsPackKey(f.Key) {
		if end := f.Offset + f.StoredSize; size < end {
			return fmt.Errorf("%w: pack %s has %d bytes, the manifest records a file up to byte %d", ErrVerify, key, size, end)
		}
		return nil
	}
	if size != f.StoredSize {
		return fmt.Errorf("%w: object %s has %d bytes, the manifest records %d", ErrVerify, key, size, f.StoredSize)
	}
	return nil
}

// verify checks a file's decoded size and SHA-256; a mismatch is a
// *wholeFileError.
func (r *restorer) verify(f manifest.File, h interface{ Sum([]byte) []byte }, n int64, key string) error {
	if n != f.Size {
		return &wholeFileError{fmt.Errorf("%w: object %s decodes to %d bytes, the manifest records %d", ErrVerify, key, n, f.Size)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return &wholeFileError{fmt.Errorf("%w: object %s: SHA-256 %s, the manifest records %s (the object is corrupt)", ErrVerify, key, got, f.SHA256)}
	}
	return nil
}

// wholeFileError is a file whose bytes, all read, are not the file the
// manifest records (ErrVerify).
type wholeFileError struct{ err error }

func (e *wholeFileError) Error() string { return e.err.Error() }
func (e *wholeFileError) Unwrap() error { return e.err }
