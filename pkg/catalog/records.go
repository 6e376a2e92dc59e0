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
	f    *os.File
	w    *bufio.Writer // nil: written through, readable at once
	size int64
	seed maphash.Seed
	buf  []byte

	byFP, bySHA []entry
	// live, for records looked up while they are added (a run's own),
	// locates them by content instead of bySHA.
	live map[uint64]uint64

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
	return &records{f: f, seed: maphash.MakeSeed(), live: map[uint64]uint64{}, liveSizes: map[int64]struct{}{}}, nil
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
	var w io.Writer = r.f
	if r.w != nil {
		w = r.w
	}
	if _, err := w.Write(line); err != nil {
		return fmt.Errorf("write the catalog's temporary file: %w", err)
	}
	loc := uint64(r.size)<<lenBits | uint64(len(line)-1)
	r.size += int64(len(line))
	if r.live != nil {
		if k, ok := shaKey(f.SHA256); ok {
			r.live[k] = loc
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
	if _, err := r.f.ReadAt(buf, off); err != nil && err != io.EOF {
		return manifest.File{}, buf, fmt.Errorf("read the catalog's temporary file: %w", err)
	}
	f, err := manifest.ParseRecord(buf)
	return f, buf, err
}

// find calls match with each record whose key hashes as k, until it
// reports true. It may run concurrently with other finds, not with add.
func (r *records) find(table []entry, k uint64, match func(manifest.File) bool) (manifest.File, bool) {
	i, _ := slices.BinarySearchFunc(table, k, func(e entry, k uint64) int { return cmp.Compare(e.key, k) })
	var buf []byte
	for ; i < len(table) && table[i].key == k; i++ {
		f, b, err := r.read(table[i].loc, buf)
		buf = b
		if err == nil && match(f) {
			return f, true
		}
	}
	return manifest.File{}, false
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
		loc, ok := r.live[k]
		if !ok {
			return manifest.File{}, false
		}
		f, _, err := r.read(loc, nil)
		return f, err == nil && match(f)
	}
	return r.find(r.bySHA, k, match)
}

// memory is what the tables hold: 16 bytes a record (and 8 a large one's
// size), and some 40 a record in the maps of live records.
func (r *records) memory() int64 {
	return int64(cap(r.byFP)+cap(r.bySHA))*16 + int64(cap(r.sizes))*8 + int64(len(r.live)+len(r.liveSizes))*40
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
