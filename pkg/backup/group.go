package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/eintr"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/pagecache"
	"github.com/s3bak/s3bak/pkg/source"
)

// Groups: small files are compressed together, a group of them one zstd
// frame in a pack, each file the bytes from its Skip (manifest.File.Group).
// Coded alone, a file of a few KiB pays a frame's entropy tables and finds
// no matches in its neighbours: on the components of Cassandra's test
// sstables groups of 128 KiB store 0.150 of the raw bytes where files
// alone store 0.284, and code 1.4 to 1.6 times as fast (bench/README.md,
// "Groups of small files"). A file stays restorable on its own: a restore fetches its
// group, at most groupSize raw bytes, and keeps the file's part of it.
const (
	// groupSize bounds a group's raw bytes: one zstd block, which the
	// encoder codes without history, and little to decode for one file.
	groupSize = 128 << 10
	// groupFile is the largest file grouped: a larger one would fill a
	// group alone.
	groupFile = 32 << 10
	// groupFiles bounds a group's files, and so the files a group not yet
	// full holds back in the manifest's window (which is far larger).
	groupFiles = 1024
)

// grouping gathers consecutive small files into groups as the files are
// handed out (state.files): each group goes to a worker whole.
type grouping struct {
	limit int64 // raw bytes of a group; 0: no groups
	files []source.File
	at    []int // each file's index in the set
	bytes int64
}

// groupLimit is the raw size of the groups this run makes: 0 (none)
// without packs, or without compression.
func (st *state) groupLimit() int64 {
	if st.packs == nil || st.e.enc.StoredMode() != chunk.Zstd {
		return 0
	}
	// The group is one chunk, and a small thing in a pack: small chunks
	// or packs (a small --chunk-size, --pack-size or --max-memory) make
	// smaller groups.
	return min(groupSize, int64(st.e.enc.Options().ChunkSize), st.packs.most())
}

// add takes f into the group being gathered when it belongs in one, and
// returns the group to hand out when it is full: before f when f would
// not fit, or because the first file waited too long.
func (g *grouping) add(f source.File, i int, linked map[inode]bool) (taken bool, full *job) {
	if g.limit == 0 || f.Size <= 0 || f.Size > min(groupFile, g.limit) || f.Ino != 0 && linked[inode{f.Dev, f.Ino}] {
		// A hard-linked file is read once for all its names (state.file).
		if len(g.files) > 0 && i-g.at[0] >= groupFiles {
			return false, g.take()
		}
		return false, nil
	}
	if g.bytes+f.Size > g.limit || len(g.files) == groupFiles {
		full = g.take()
	}
	g.files = append(g.files, f)
	g.at = append(g.at, i)
	g.bytes += f.Size
	return true, full
}

// take returns the group gathered, if any, and starts the next.
func (g *grouping) take() *job {
	if len(g.files) == 0 {
		return nil
	}
	j := &job{group: g.files, at: g.at}
	g.files, g.at, g.bytes = nil, nil, 0
	return j
}

// storeGroup stores files (all small) as one group in a pack, but for those
// already stored: unchanged since the catalog's record, or of a content
// stored before or earlier in the group. Their records come back in order.
func (e *Engine) storeGroup(ctx context.Context, s *state, files []source.File) ([]manifest.File, error) {
	var total int64
	for _, f := range files {
		total += f.Size
	}
	// The raw bytes and their encoding, at most a frame and a seek table
	// larger.
	release, err := e.opts.Budget.Acquire(ctx, 2*total+1024)
	if err != nil {
		return nil, err
	}
	defer release()
	out := make([]manifest.File, len(files))
	fps := make([]string, len(files)) // "": unchanged, the catalog has its record
	buf := s.groupBuf()
	raw := slices.Grow(buf.raw[:0], int(total))
	defer func() { buf.raw = raw; s.groupBufs.Put(buf) }()
	var members []int         // files stored by this group, in it from their Skip
	var dups []int            // files of a content another member has
	first := map[string]int{} // content: the member that stores it
	for i, f := range files {
		fp := f.Fingerprint()
		out[i] = recordOf(f)
		mf := &out[i]
		if e.unchanged(s, f, fp, mf) {
			continue
		}
		fps[i] = fp
		skip := len(raw)
		if raw, err = readSmall(f, raw); err != nil {
			return nil, fmt.Errorf("back up %s (%s): %w", f.Path, f.Abs(), err)
		}
		sum := sha256.Sum256(raw[skip:])
		mf.SHA256 = hex.EncodeToString(sum[:])
		if s.storedBefore(mf) {
			raw = raw[:skip]
			e.opts.Progress.Add(f.Size)
			continue
		}
		if _, ok := first[mf.SHA256]; ok {
			raw = raw[:skip]
			dups = append(dups, i)
			continue
		}
		first[mf.SHA256] = i
		members = append(members, i)
		mf.Skip = int64(skip)
	}
	if len(members) > 0 {
		// The duplicates' records wait for the pack too (packFiles).
		if buf.obj, err = e.storeMembers(ctx, s, out, members, len(members)+len(dups), raw, buf.obj); err != nil {
			return nil, err
		}
	}
	for _, i := range dups {
		out[i].CopyStored(&out[first[out[i].SHA256]])
		s.count(func(r *Result) { r.Reused++; r.Duplicates++ })
		e.opts.Progress.Add(out[i].Size)
	}
	for i, fp := range fps {
		if fp != "" {
			e.record(s, fp, &out[i])
		}
	}
	return out, nil
}

// storeMembers encodes raw, the bytes of out's members one after the
// other, as one chunk (into obj's room) and packs it; each member's record
// gets the group. records is how many catalog records will wait for the
// pack. It returns the room, for the next group.
func (e *Engine) storeMembers(ctx context.Context, s *state, out []manifest.File, members []int, records int, raw, obj []byte) ([]byte, error) {
	obj, l := e.enc.EncodeGroup(obj[:0], raw)
	if len(l.Chunks) != 1 || l.Mode != chunk.Zstd {
		return obj, fmt.Errorf("a group of %d bytes was coded as %d chunks of mode %s, want one zstd chunk", len(raw), len(l.Chunks), l.Mode)
	}
	pk, off, err := s.packs.add(ctx, obj, l.StoredCRC32C, int64(len(raw)), records) // copies obj
	if err != nil {
		return obj, fmt.Errorf("pack a group of %d files (%s …): %w", len(members), out[members[0]].Path, err)
	}
	chunks := manifest.ChunksOf(l)
	for _, i := range members {
		mf := &out[i]
		mf.Key, mf.Offset, mf.StoredSize, mf.Compression = pk, off, l.StoredSize, l.Mode
		mf.Chunks, mf.Group = chunks, int64(len(raw))
	}
	s.count(func(r *Result) { r.Uploaded += len(members); r.UploadedBytes += l.StoredSize })
	return obj, nil
}

// groupBuf is the room a group is read and encoded in.
type groupBuf struct{ raw, obj []byte }

func (s *state) groupBuf() *groupBuf {
	if b, ok := s.groupBufs.Get().(*groupBuf); ok {
		return b
	}
	return &groupBuf{}
}

// readSmall appends the bytes of f, a small file of the snapshot, to dst.
func readSmall(f source.File, dst []byte) ([]byte, error) {
	// A descriptor, not an os.File: os.NewFile asks whether it is
	// non-blocking, and the file's size before the read comes from the
	// listing. Two system calls of seven a file.
	fd, err := openFD(f.Abs())
	if err != nil {
		return dst, openError(err)
	}
	defer unix.Close(fd)
	n := len(dst)
	dst = slices.Grow(dst, int(f.Size))[:n+int(f.Size)]
	if err := pagecache.ReadSmall(fd, dst[n:]); err != nil {
		return dst, err
	}
	// What was read is the file as listed if it still is: a file that
	// changed since, before or while it was read, has another size or
	// modification time.
	var st unix.Stat_t
	if err := eintr.Retry(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return dst, &fs.PathError{Op: "fstat", Path: f.Abs(), Err: err}
	}
	return dst, changedFrom("after the snapshot was listed", f.Size, f.ModTime, st.Size, time.Unix(st.Mtim.Unix()))
}
