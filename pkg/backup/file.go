package backup

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/eintr"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/pagecache"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// store reads one file and uploads its content unless already stored. A
// file the catalog knows by fingerprint is not even opened.
func (e *Engine) store(ctx context.Context, s *state, f source.File) (manifest.File, error) {
	fp := f.Fingerprint()
	mf := recordOf(f)
	if e.unchanged(s, f, fp, &mf) {
		return mf, nil
	}
	fh, fi, err := openSnapshotFile(f)
	if err != nil {
		return manifest.File{}, err
	}
	defer fh.Close()
	// Read through the page cache, and leave it as it was: a node's whole
	// snapshot must not evict the pages the database serves from. A tiny
	// file's read does that itself (pagecache.ReadSmall, in storeSmall).
	if f.Size > min(int64(e.enc.Options().ChunkSize), pagecache.SmallFile) {
		cache := pagecache.Before(fh, f.Size)
		defer cache.Drop(fh, f.Size)
	}
	if e.storedWhole(f.Size) {
		err = e.storeSmall(ctx, s, fh, &mf)
	} else {
		var done func()
		done, err = e.storeLarge(ctx, s, fh, &mf, fp)
		defer done() // once recorded below: a file of the same size waits for it
	}
	err = cmp.Or(err, changedSince(fh, fi))
	if err == nil {
		e.record(s, fp, &mf)
	}
	return mf, err
}

// storedWhole reports whether a file of size bytes is read and coded
// whole, as one chunk (storeSmall): only such a file may go into a pack.
func (e *Engine) storedWhole(size int64) bool { return size <= int64(e.enc.Options().ChunkSize) }

// recordOf is f's record, before its content is stored.
func recordOf(f source.File) manifest.File {
	return manifest.File{Path: f.Path, Size: f.Size, ModTime: f.ModTime.UTC(), Mode: f.Mode.Perm(), Ino: f.Ino, Digest: f.Digest}
}

// unchanged fills mf from the catalog's record of a file of the same
// fingerprint, if there is one: the file is then not even opened.
func (e *Engine) unchanged(s *state, f source.File, fp string, mf *manifest.File) bool {
	if k := e.opts.Known; k == nil || e.opts.Full || !k.Lookup(fp, mf) {
		return false
	}
	s.count(func(r *Result) { r.Reused++; r.Unread++; r.UnreadBytes += f.Size })
	e.opts.Progress.Add(f.Size)
	return true
}

// record notes in the catalog that mf's content is stored, once it is:
// a content in a pack still being filled or uploaded waits for it.
func (e *Engine) record(s *state, fp string, mf *manifest.File) {
	if e.opts.Known != nil && !s.packs.deferRecord(fp, mf) {
		e.opts.Known.Record(fp, mf)
	}
}

// openSnapshotFile opens a file of the snapshot, and checks that it has
// the size it was listed with.
func openSnapshotFile(f source.File) (*os.File, fs.FileInfo, error) {
	fh, err := openRead(f.Abs())
	if err != nil {
		return nil, nil, openError(err)
	}
	fi, err := fh.Stat()
	if err == nil && fi.Size() != f.Size {
		err = fmt.Errorf("size changed from %d to %d bytes since the snapshot was listed: %w", f.Size, fi.Size(), chunk.ErrChanged)
	}
	if err != nil {
		fh.Close()
		return nil, nil, err
	}
	return fh, fi, nil
}

// openError says what to do about a snapshot file that cannot be opened.
func openError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("open: %w (it was deleted after the snapshot was listed: was the snapshot cleared, e.g. by nodetool clearsnapshot, while the backup ran? take a new snapshot and back it up)", err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("open: %w (check that s3bak runs as a user who may read the snapshot, e.g. cassandra)", err)
	}
	return fmt.Errorf("open: %w", err)
}

// changedSince fails when fh, read since it was opened (fi), has changed:
// only Size bytes were read, and a file that grew, or was written, while
// it was read would be stored cut short or mixed, without a word.
func changedSince(fh *os.File, fi fs.FileInfo) error {
	after, err := fh.Stat()
	if err != nil {
		return err
	}
	return changedFrom("while it was read", fi.Size(), fi.ModTime(), after.Size(), after.ModTime())
}

// changedFrom fails when a file read, of size and mtime before, has
// another size or mtime after: it changed when.
func changedFrom(when string, size int64, mtime time.Time, sizeAfter int64, mtimeAfter time.Time) error {
	if sizeAfter != size || !mtimeAfter.Equal(mtime) {
		return fmt.Errorf("it changed %s (size %d -> %d bytes, mtime %s -> %s): what was read may be cut short or mix old and new bytes; back up a snapshot (nodetool snapshot), whose files never change: %w",
			when, size, sizeAfter, mtime.UTC().Format(time.RFC3339Nano), mtimeAfter.UTC().Format(time.RFC3339Nano), chunk.ErrChanged)
	}
	return nil
}

// openRead opens a snapshot file for reading, as os.Open does but for the
// network poller: os.Open offers every file to epoll (refused for a
// regular file, after making the descriptor non-blocking), two system calls
// of the half dozen a small file costs.
func openRead(name string) (*os.File, error) {
	fd, err := openFD(name)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openFD opens a snapshot file for reading as a bare descriptor.
func openFD(name string) (int, error) {
	var fd int
	err := eintr.Retry(func() (err error) {
		fd, err = unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

// storeSmall reads a file of at most one chunk into memory once: hash,
// encode and upload from the same buffer.
func (e *Engine) storeSmall(ctx context.Context, s *state, fh *os.File, mf *manifest.File) error {
	// The raw bytes and their encoding, which is at most a frame header
	// larger. The raw bytes go back once encoded: the upload of a file of
	// a few MiB takes a round trip and more, its encoding milliseconds.
	releaseRaw, release, err := e.opts.Budget.AcquireSplit(ctx, mf.Size, mf.Size+1024)
	if err != nil {
		return err
	}
	defer release()
	defer releaseRaw() // a second call is harmless
	raw := make([]byte, mf.Size)
	if mf.Size <= pagecache.SmallFile {
		err = pagecache.ReadSmall(int(fh.Fd()), raw)
	} else if _, err = io.ReadFull(fh, raw); err != nil {
		err = fmt.Errorf("read: %w", err)
	}
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	mf.SHA256 = hex.EncodeToString(sum[:])
	obj, l := e.enc.EncodeBytes(nil, raw)
	raw = nil
	releaseRaw()
	key := manifest.ObjectKey(mf.SHA256, l.Mode == chunk.Zstd, l.ChunkSize)
	packed := false // its bytes count as done when its pack is stored
	err = s.storeOnce(ctx, mf, key, func(st *manifest.File) (int64, error) {
		if s.packs.fits(len(obj)) {
			packed = true
			pk, off, err := s.packs.add(ctx, obj, l.StoredCRC32C, mf.Size, 1)
			describe(st, pk, l)
			st.Offset = off
			return l.StoredSize, err
		}
		describe(st, key, l)
		return l.StoredSize, e.up.Upload(ctx, e.opts.Node.Root()+key, transfer.Body{Pieces: [][]byte{obj}, CRC32C: l.StoredCRC32C, Summed: true})
	})
	if err != nil {
		return err
	}
	if !packed {
		e.opts.Progress.Add(mf.Size)
	}
	return nil
}

// storeLarge reads a large file once when it cannot be a duplicate: no
// stored content has its size, nor has a file of this run in flight. It is
// then hashed while it is compressed and uploaded, under a random key.
// Otherwise it reads the file twice: once to learn its SHA-256, which names
// the object (so a content stored before is found, not stored again), and
// once to compress and upload it. The caller calls done once the file's
// record is in Known.
func (e *Engine) storeLarge(ctx context.Context, s *state, fh *os.File, mf *manifest.File, fp string) (done func(), err error) {
	if k, ok := e.opts.Known.(sizer); e.opts.Known == nil || ok && !k.HasSize(mf.Size) {
		done, first, err := s.sizes.claim(ctx, mf.Size)
		if err != nil {
			return func() {}, err
		}
		if first {
			return done, e.storeLargeOnce(ctx, s, fh, mf, fp)
		}
		// A file of this size was stored in one pass meanwhile: this one
		// may hold the same bytes, which the hashing pass finds.
	}
	return func() {}, e.storeLargeTwice(ctx, s, fh, mf)
}

// sizer tells whether a stored content may have a given size;
// *catalog.Known is one.
type sizer interface {
	HasSize(size int64) bool
}

// storeLargeOnce hashes, compresses and uploads a large file in one read.
func (e *Engine) storeLargeOnce(ctx context.Context, s *state, fh *os.File, mf *manifest.File, fp string) error {
	h := sha256.New()
	l, key, err := e.streamLarge(ctx, s, largeFile{fp: fp, r: fh, size: mf.Size, hash: h})
	if err != nil {
		return err
	}
	mf.SHA256 = hex.EncodeToString(h.Sum(nil))
	describe(mf, key, l)
	s.count(func(r *Result) { r.Uploaded++; r.UploadedBytes += l.StoredSize })
	return nil
}

// storeLargeTwice reads a large file twice. The per-chunk CRCs of the
// first read are checked on the second, so bytes that changed in between
// fail the backup instead of being stored under the wrong name.
func (e *Engine) storeLargeTwice(ctx context.Context, s *state, fh *os.File, mf *manifest.File) error {
	cs := int64(e.enc.Options().ChunkSize)
	releaseHash, err := e.opts.Budget.Acquire(ctx, hashBufferSize)
	if err != nil {
		return err
	}
	h := sha256.New()
	crcs, err := hashChunks(ctx, fh, mf.Size, cs, h)
	releaseHash() // before waiting on another file's upload of the same content
	if err != nil {
		return err
	}
	mf.SHA256 = hex.EncodeToString(h.Sum(nil))
	key := manifest.ObjectKey(mf.SHA256, e.enc.StoredMode() == chunk.Zstd, cs)
	uploaded := false
	err = s.storeOnce(ctx, mf, key, func(st *manifest.File) (int64, error) {
		uploaded = true
		l, _, err := e.streamLarge(ctx, s, largeFile{key: key, r: fh, size: mf.Size, crcs: crcs})
		if err != nil {
			return 0, err
		}
		describe(st, key, l)
		return l.StoredSize, nil
	})
	if err == nil && !uploaded {
		e.opts.Progress.Add(mf.Size)
	}
	return err
}

func describe(mf *manifest.File, key string, l *chunk.Layout) {
	mf.Key = key
	mf.Compression = l.Mode
	mf.StoredSize = l.StoredSize
	if l.Mode == chunk.Zstd {
		mf.ChunkSize = l.ChunkSize
		mf.Chunks = manifest.ChunksOf(l)
	}
}

// streamShape is how many chunks a large file of size bytes compresses at
// once, and the memory its stream then holds: enc for the encoder's
// chunks, until the last one is encoded, and parts for the parts, until
// the last one is stored — no more than the file has, so that a file of a
// few chunks takes a few chunks' memory and leaves the rest to others. As
// many workers as the encoder has, but fewer when the budget left beside
// the packs could not hold them all, so that a large file never asks for
// more than can ever be free. With one worker a stream may still need more
// than the budget has; it then takes all of it and runs alone (see
// StreamShape for sizing the parts).
func (e *Engine) streamShape(size int64) (workers int, enc, parts int64) {
	workers = max(e.enc.Options().Workers, 1)
	cs := int64(e.enc.Options().ChunkSize)
	// The parts in flight and the one being filled; a part holds a chunk
	// at least, and the seek table may be a part of its own.
	n := min(e.up.Concurrency()+1, chunk.NumChunks(size, cs)+1)
	parts = int64(n) * PartBuffer(e.up.PartSize(), cs)
	if avail := e.opts.Budget.Available(); avail > 0 {
		for workers > 1 && e.enc.StreamMemory(workers, size)+parts > avail {
			workers--
		}
	}
	return workers, e.enc.StreamMemory(workers, size), parts
}

// hashBufferSize is the read buffer of the SHA-256 pass over a large file.
const hashBufferSize = 1 << 20

// hashChunks reads size bytes of r once, writing them to h, and returns the
// CRC32C of every chunk.
func hashChunks(ctx context.Context, r io.ReaderAt, size, chunkSize int64, h hash.Hash) ([]uint32, error) {
	crcs := make([]uint32, 0, chunk.NumChunks(size, chunkSize))
	buf := make([]byte, hashBufferSize)
	var crc uint32
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(off+int64(len(buf)), size, (off/chunkSize+1)*chunkSize)
		p := buf[:end-off]
		if n, err := r.ReadAt(p, off); err != nil && !(err == io.EOF && n == len(p)) {
			return nil, fmt.Errorf("read at %d: %w", off, err)
		}
		h.Write(p)
		crc = chunk.UpdateCRC32C(crc, p)
		off = end
		if off%chunkSize == 0 || off == size {
			crcs = append(crcs, crc)
			crc = 0
		}
	}
	return crcs, nil
}
