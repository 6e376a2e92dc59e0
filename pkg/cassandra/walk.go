package cassandra

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/s3bak/s3bak/pkg/eintr"
	"github.com/s3bak/s3bak/pkg/source"
)

// collect lists the files of every snapshot directory. Index sstables live
// in ".<index>/" subdirectories. Ephemeral (repair) snapshots are skipped.
func collect(ctx context.Context, dirs, all []snapDir, size int, log *slog.Logger) ([]source.File, error) {
	// Counted first (unless size, from an earlier listing, says how many),
	// then listed into a slice of that size: files appended one by one
	// would hold up to twice their slice.
	if size == 0 {
		counter := &walker{ctx: ctx, log: slog.New(slog.DiscardHandler), counting: true}
		if err := counter.walk(dirs, all); err != nil {
			return nil, err
		}
		size = counter.n
	}
	w := &walker{ctx: ctx, log: log, files: make([]source.File, 0, size)}
	if err := w.walk(dirs, all); err != nil {
		return nil, err
	}
	return renameCollisions(w.files)
}

// walk lists the snapshot directories' files; a directory among all (every
// snapshot directory) reached through a symlink is not read again.
func (w *walker) walk(dirs, all []snapDir) error {
	w.seen = map[dirID]string{}
	for _, d := range all {
		w.seen[d.id] = d.abs
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d.abs, "ephemeral.snapshot")); err == nil {
			continue
		}
		if err := w.dir(d.abs, d.keyspace+"/"+d.tableDir); err != nil {
			return err
		}
	}
	return nil
}

// walker lists a snapshot directory's files, in name order. It follows
// symlinks to directories, each directory once (a loop ends at a directory
// already seen, which is logged), and refuses symlinks to files.
type walker struct {
	ctx   context.Context
	log   *slog.Logger
	seen  map[dirID]string // → the path it was read from
	files []source.File
	// counting only counts the files (n), reading no more than the
	// directories.
	counting bool
	n        int
}

func (w *walker) dir(abs, rel string) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	d, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if !w.counting { // a count needs no order
		slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	dirfd := int(d.Fd())
	for i := 0; i < len(entries); {
		if !dirLike(entries[i]) {
			// A run of plain files, stat'ed in one go (statRun).
			j := i + 1
			for j < len(entries) && !dirLike(entries[j]) {
				j++
			}
			if w.counting {
				w.n += j - i
			} else if err := w.statRun(dirfd, abs, rel, entries, entries[i:j]); err != nil {
				return err
			}
			i = j
			continue
		}
		e := entries[i]
		i++
		name := e.Name()
		r := rel + "/" + name
		p := filepath.Join(abs, name)
		fi, err := asDir(e, p)
		if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		if fi == nil && w.counting {
			w.n++
			continue
		}
		if fi == nil { // a symlink to a file, or to nothing: refused by statFile
			if err := w.statRun(dirfd, abs, rel, entries, entries[i-1:i]); err != nil {
				return err
			}
			continue
		}
		id := idOf(fi)
		if first, ok := w.seen[id]; ok && id != (dirID{}) {
			w.log.Warn("directory reached twice in a snapshot (a symlink loop?): read once", "skipped", p, "read_as", first)
			continue
		}
		w.seen[id] = p
		if err := w.dir(p, r); err != nil {
			return err
		}
	}
	return nil
}

// dirLike: a directory, or a symlink that may lead to one.
func dirLike(e fs.DirEntry) bool { return e.IsDir() || e.Type()&fs.ModeSymlink != 0 }

// statSplit is the fewest files a goroutine stats when a directory's run
// of files is split among several: a table of 10,000 files was listed in
// 35 ms of one core's fstatat calls and paths, ahead of everything else a
// backup does.
const statSplit = 1024

// statRun appends the files of run, entries of the directory dirfd (abs,
// rel) in name order, to w.files, in that order. A long run is split among
// up to GOMAXPROCS goroutines, each filling its own range of the slice; the
// error reported is that of the first file in name order that failed, as
// one goroutine would have reported.
func (w *walker) statRun(dirfd int, abs, rel string, entries, run []fs.DirEntry) error {
	base := len(w.files)
	w.files = slices.Grow(w.files, len(run))[:base+len(run)]
	out := w.files[base:]
	listed := func(n string) bool {
		_, ok := slices.BinarySearchFunc(entries, n, func(e fs.DirEntry, n string) int { return strings.Compare(e.Name(), n) })
		return ok
	}
	stat := func(lo, hi int) error {
		for k := lo; k < hi; k++ {
			name := run[k].Name()
			f, err := statFile(dirfd, abs, name)
			if err != nil {
				return err
			}
			f.Path, f.Dir = rel+"/"+name, abs // abs is shared by the directory's files
			f.Digest = dataDigest(dirfd, name, listed)
			out[k] = f
		}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(run)/statSplit)
	if workers < 2 {
		return stat(0, len(run))
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { errs[i] = stat(i*len(run)/workers, (i+1)*len(run)/workers) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// asDir describes the directory that the entry e at p is or links to, and
// returns nil for anything else: a symlink to a file, or one that leads
// nowhere, is then refused by statFile.
func asDir(e fs.DirEntry, p string) (fs.FileInfo, error) {
	if !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
		return nil, nil
	}
	fi, err := os.Stat(p)
	if err != nil {
		if e.IsDir() {
			return nil, err
		}
		return nil, nil
	}
	if !fi.IsDir() {
		return nil, nil
	}
	return fi, nil
}

// statFile describes the file name in the directory dirfd (at dir): by
// the directory's descriptor, not its path, which the kernel would
// otherwise walk again for each of a table's thousands of files.
func statFile(dirfd int, dir, name string) (source.File, error) {
	var st unix.Stat_t
	err := eintr.Retry(func() error { return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	if err != nil {
		return source.File{}, fmt.Errorf("stat snapshot file: %w", &fs.PathError{Op: "lstat", Path: filepath.Join(dir, name), Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		p := filepath.Join(dir, name)
		typ := "not a regular file"
		if fi, err := os.Lstat(p); err == nil {
			typ = fi.Mode().Type().String()
		}
		return source.File{}, fmt.Errorf("snapshot file %s is not a regular file (%v): snapshots hold hard links, not symlinks", p, typ)
	}
	return source.File{
		Size:    st.Size,
		Mode:    fs.FileMode(st.Mode).Perm(),
		ModTime: time.Unix(st.Mtim.Unix()),
		Dev:     uint64(st.Dev),
		Ino:     st.Ino,
	}, nil
}

// dataDigest returns the checksum Cassandra wrote for a Data.db (name, in
// the directory dirfd) in its Digest component (crc32 since 2.1; sha1 and
// adler32 before), or "" for other components and when there is none. It
// only sharpens the index's fingerprint, so a missing or odd digest is not
// an error. listed tells whether the directory's listing has a name: a
// name it lacks is not opened (a snapshot of sstables without digests
// would otherwise cost three failed opens a Data.db).
func dataDigest(dirfd int, name string, listed func(string) bool) string {
	base, ok := strings.CutSuffix(name, "Data.db")
	if !ok {
		return ""
	}
	for _, ext := range []string{"Digest.crc32", "Digest.sha1", "Digest.adler32"} {
		if !listed(base + ext) {
			continue
		}
		if b, ok := readSmallAt(dirfd, base+ext, 128); ok {
			return ext[len("Digest."):] + ":" + strings.TrimSpace(string(b))
		}
	}
	return ""
}

// readSmallAt reads the file name in the directory dirfd, if it holds at
// most max bytes.
func readSmallAt(dirfd int, name string, max int) ([]byte, bool) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	buf := make([]byte, max+1)
	n := 0
	for n < len(buf) {
		var m int
		err := eintr.Retry(func() (err error) {
			m, err = unix.Read(fd, buf[n:])
			return err
		})
		if err != nil {
			return nil, false
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], n <= max
}
