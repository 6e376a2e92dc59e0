package catalog

import (
	"bufio"
	"cmp"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"slices"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/source"
)

// records is a file of manifest records on local disk, looked up by
// fingerprint and by content without holding the records in memory: a
// table per key holds 16 bytes a record (a 64-bit hash of the key and
// where the record's line is), sorted, and a lookup reads the line back
// and compares the whole key. A million files cost 32 MB of tables and a
// read from the page cache per lookup, instead of a gigabyte of maps.
type records struct {
	f *os.File
	w *bufio.Writer // bulk records; nil for live ones
	// tail is the live records' last bytes, not yet in f, which holds the
	// first flushed: a system call a record cost a backup of many small
	// files as much CPU as their manifest.
	tail    []byte
	flushed int64
	size    int64
	seed    maphash.Seed
	buf     []byte

	byFP, bySHA []entry
	// live, for records looked up while they are added (a run's own),
	// locates them by content instead of bySHA.
	live *liveTable

	// sizes of the contents of at least LargeContent bytes: sorted, or a
	// set for live records.
	sizes     []int64
	liveSizes map[int64]struct{}
}

// LargeContent is the least size Known.HasSize tells apart: the sizes of
// smaller contents are not kept (the many small files of a node would cost
// 8 bytes each, and are read once anyway).
const LargeContent = 64 << 10

// entry locates one record: its key's hash, and its line's offset and
// length packed into one word (a line is at most manifest.MaxRecordSize).
type entry struct {
	key uint64
	loc uint64
}

const lenBits = 27 // > log2(manifest.MaxRecordSize)

// newRecords makes records to be added in bulk, then sealed and looked up.
func newRecords(dir string) (*records, error) {
	f, err := tempFile(dir)
	if err != nil {
		return nil, err
	}
	return &records{f: f, w: bufio.NewWriterSize(f, 64<<10), seed: maphash.MakeSeed()}, nil
}

// newLiveRecords makes records looked up by content as they are added.
func newLiveRecords(dir string) (*records, error) {
	f, err := tempFile(dir)
	if err != nil {
		return nil, err
	}
	return &records{f: f, seed: maphash.MakeSeed(), live: &liveTable{}, liveSizes: map[int64]struct{}{}}, nil
}

func tempFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "s3bak-records-*")
	if err != nil {
		return nil, fmt.Errorf("a temporary file for the catalog (set TMPDIR to a writable directory): %w", err)
	}
	// Unlinked at once: nothing is left behind, whatever ends the run.
	os.Remove(f.Name())
	return f, nil
}

// add appends f's record; fp is its fingerprint ("" when it has none).
func (r *records) add(f *manifest.File, fp string) error {
	line, err := manifest.AppendRecord(r.buf[:0], f)
	if err != nil {
		return err
	}
	r.buf = line
	if r.w != nil {
		_, err = r.w.Write(line)
	} else {
		r.tail = append(r.tail, line...)
		if len(r.tail) >= tailSize {
			err = r.flush()
		}
	}
	if err != nil {
		return fmt.Errorf("write the catalog's temporary file: %w", err)
	}
	loc := uint64(r.size)<<lenBits | uint64(len(line)-1)
	r.size += int64(len(line))
	if r.live != nil {
		if k, ok := shaKey(f.SHA256); ok {
			r.live.add(entry{k, loc})
		}
		if f.Size >= LargeContent {
			r.liveSizes[f.Size] = struct{}{}
		}
		return nil
	}
	if f.Size >= LargeContent {
		r.sizes = append(r.sizes, f.Size)
	}
	if fp != "" {
		r.byFP = append(r.byFP, entry{maphash.String(r.seed, fp), loc})
	}
	if k, ok := shaKey(f.SHA256); ok {
		r.bySHA = append(r.bySHA, entry{k, loc})
	}
	return nil
}

// tailSize is how many bytes of live records wait in memory for one write.
const tailSize = 64 << 10

// flush writes the live records' tail to the file: every record added is
// then in it, for a checkpoint to read.
func (r *records) flush() error {
	if len(r.tail) == 0 {
		return nil
	}
	if _, err := r.f.WriteAt(r.tail, r.flushed); err != nil {
		return err
	}
	r.flushed += int64(len(r.tail))
	r.tail = r.tail[:0]
	return nil
}

// seal makes bulk records readable and their tables searchable.
func (r *records) seal() error {
	if r.w == nil {
		return nil
	}
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("write the catalog's temporary file: %w", err)
	}
	byKey := func(a, b entry) int { return cmp.Compare(a.key, b.key) }
	slices.SortFunc(r.byFP, byKey)
	slices.SortFunc(r.bySHA, byKey)
	r.byFP, r.bySHA = slices.Clip(r.byFP), slices.Clip(r.bySHA)
	slices.Sort(r.sizes)
	r.sizes = slices.Clip(slices.Compact(r.sizes))
	return nil
}

// hasSize reports whether a record of at least LargeContent bytes has
// exactly size bytes.
func (r *records) hasSize(size int64) bool {
	if r.live != nil {
		_, ok := r.liveSizes[size]
		return ok
	}
	_, ok := slices.BinarySearch(r.sizes, size)
	return ok
}

// read returns the record at loc.
func (r *records) read(loc uint64, buf []byte) (manifest.File, []byte, error) {
	off, n := int64(loc>>lenBits), int(loc&(1<<lenBits-1))
	buf = slices.Grow(buf[:0], n)[:n]
	if off >= r.flushed && r.w == nil {
		copy(buf, r.tail[off-r.flushed:])
	} else if _, err := r.f.ReadAt(buf, off); err != nil && err != io.EOF {
		return manifest.File{}, buf, fmt.Errorf("read the catalog's temporary file: %w", err)
	}
	f, err := manifest.ParseRecord(buf)
	return f, buf, err
}

// find calls match with each record whose key hashes as k in the sorted
// table, until it reports true. It may run concurrently with other finds,
// not with add.
func (r *records) find(table []entry, k uint64, match func(manifest.File) bool) (manifest.File, bool) {
	return r.first(func(fn func(uint64) bool) bool { return eachEqual(table, k, fn) }, match)
}

// first returns the first record of those each locates that match
// accepts.
func (r *records) first(each func(fn func(loc uint64) bool) bool, match func(manifest.File) bool) (manifest.File, bool) {
	var found manifest.File
	var buf []byte
	ok := each(func(loc uint64) bool {
		f, b, err := r.read(loc, buf)
		buf = b
		found = f
		return err == nil && match(f)
	})
	if !ok {
		return manifest.File{}, false
	}
	return found, true
}

// eachEqual calls fn with the location of each entry of the sorted table
// whose key is k, until it reports true.
func eachEqual(table []entry, k uint64, fn func(loc uint64) bool) bool {
	i, _ := slices.BinarySearchFunc(table, k, func(e entry, k uint64) int { return cmp.Compare(e.key, k) })
	for ; i < len(table) && table[i].key == k; i++ {
		if fn(table[i].loc) {
			return true
		}
	}
	return false
}

// liveTable locates records while more are added: an unsorted tail of a
// few hundred entries and sorted runs of doubling sizes, merged as a binary
// counter carries (each entry is merged some log2(n) times), so that a
// run's own million records cost 16 bytes each instead of a map's 40 or
// so, and a lookup a scan of the tail and a binary search a run.
type liveTable struct {
	tail []entry
	runs [][]entry // sorted, each smaller than the one before
}

const liveTail = 256

func (t *liveTable) add(e entry) {
	t.tail = append(t.tail, e)
	if len(t.tail) < liveTail {
		return
	}
	byKey := func(a, b entry) int { return cmp.Compare(a.key, b.key) }
	run := slices.SortedFunc(slices.Values(t.tail), byKey)
	t.tail = t.tail[:0]
	for n := len(t.runs); n > 0 && len(t.runs[n-1]) <= len(run); n = len(t.runs) {
		merged := make([]entry, 0, len(t.runs[n-1])+len(run))
		a, b := t.runs[n-1], run
		for len(a) > 0 && len(b) > 0 {
			if a[0].key <= b[0].key {
				merged, a = append(merged, a[0]), a[1:]
			} else {
				merged, b = append(merged, b[0]), b[1:]
			}
		}
		run = append(append(merged, a...), b...)
		t.runs = t.runs[:n-1]
	}
	t.runs = append(t.runs, run)
}

// each calls fn with the location of each entry whose key is k, until it
// reports true.
func (t *liveTable) each(k uint64, fn func(loc uint64) bool) bool {
	for _, e := range t.tail {
		if e.key == k && fn(e.loc) {
			return true
		}
	}
	for _, run := range t.runs {
		if eachEqual(run, k, fn) {
			return true
		}
	}
	return false
}

func (t *liveTable) memory() int64 {
	if t == nil {
		return 0
	}
	n := cap(t.tail)
	for _, run := range t.runs {
		n += cap(run)
	}
	return int64(n) * 16
}

// byFingerprint finds the record of a file with fingerprint fp.
func (r *records) byFingerprint(fp string) (manifest.File, bool) {
	return r.find(r.byFP, maphash.String(r.seed, fp), func(f manifest.File) bool { return fingerprint(&f) == fp })
}

// byContent finds a record of the content sha of size bytes.
func (r *records) byContent(sha string, size int64) (manifest.File, bool) {
	k, ok := shaKey(sha)
	if !ok {
		return manifest.File{}, false
	}
	match := func(f manifest.File) bool { return f.SHA256 == sha && f.Size == size }
	if r.live != nil {
		return r.first(func(fn func(uint64) bool) bool { return r.live.each(k, fn) }, match)
	}
	return r.find(r.bySHA, k, match)
}

// memory is what the tables hold: 16 bytes a record (and 8 a large one's
// size), and some 40 a large record's size in the set of live ones.
func (r *records) memory() int64 {
	return int64(cap(r.byFP)+cap(r.bySHA))*16 + int64(cap(r.sizes))*8 + int64(len(r.liveSizes))*40 + r.live.memory()
}

func (r *records) close() {
	if r != nil && r.f != nil {
		r.f.Close()
	}
}

// fingerprint is the source fingerprint a record was read with; "" for a
// record without an inode (a manifest of an older s3bak), which is never
// taken for an unchanged file.
func fingerprint(f *manifest.File) string {
	if f.Ino == 0 {
		return ""
	}
	return source.File{Path: f.Path, Ino: f.Ino, Size: f.Size, ModTime: f.ModTime, Digest: f.Digest}.Fingerprint()
}

// shaKey is the first 64 bits of a hex SHA-256.
func shaKey(sha string) (uint64, bool) {
	if len(sha) < 16 {
		return 0, false
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(sha[:16])); err != nil {
		return 0, false
	}
	var k uint64
	for _, c := range b {
		k = k<<8 | uint64(c)
	}
	return k, true
}
