package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/source"
)

// SchemaStream is the schema of a manifest that is read and written as a
// stream, one file at a time, so that neither side ever holds a million
// files' entries at once (schemas 1 and 2 were one JSON document). Its
// stored form is zstd over lines of JSON:
//
//	{"schema":3,"id":…,"file_count":N,"raw_bytes":…,…}   the header: what list and status need
//	{"p":"ks/t-1/nb-1-big-Data.db","n":…,"h":…,…}        N records, sorted by ComparePaths, one per file
//	{"end":N}                                             the trailer: a cut-short manifest is refused
//
// Sorted records make every check a reader needs (a path listed twice, a
// path that is also another's directory) a comparison with the record
// before, and put a pack's files next to each other for restore.
const SchemaStream = 3

// SchemaGroups is a stream manifest with grouped files (File.Group): an
// s3bak that reads schema 3 at most would take a group for the file.
const SchemaGroups = 4

// ErrCorrupt means a manifest read from the bucket is not one s3bak wrote:
// cut short, out of order, or with entries that do not add up.
var ErrCorrupt = errors.New("manifest is corrupt")

// header is the first line of a stream manifest.
type header struct {
	Schema      int               `json:"schema"`
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Cluster     string            `json:"cluster"`
	Node        string            `json:"node"`
	Tag         string            `json:"tag"`
	Started     time.Time         `json:"started"`
	Finished    time.Time         `json:"finished"`
	Tool        string            `json:"tool"`
	Meta        map[string]string `json:"meta,omitempty"`
	FileCount   int64             `json:"file_count"`
	RawBytes    int64             `json:"raw_bytes"`
	StoredBytes int64             `json:"stored_bytes"`
}

// ComparePaths orders manifest paths: see source.ComparePaths.
func ComparePaths(a, b string) int { return source.ComparePaths(a, b) }

// order checks that path may follow prev in a manifest: after it, and not
// inside it (a file cannot also be a directory). In ComparePaths order a
// file's path is directly followed by the paths under it, if any.
func order(prev, path string) error {
	if prev == "" {
		return nil
	}
	switch c := ComparePaths(prev, path); {
	case c == 0:
		return fmt.Errorf("file %q is listed twice", path)
	case c > 0:
		return fmt.Errorf("file %q is listed after %q: the files are out of order", path, prev)
	case len(path) > len(prev) && path[len(prev)] == '/' && strings.HasPrefix(path, prev):
		// Not HasPrefix(path, prev+"/"): that made a string a record.
		return fmt.Errorf("file %q is also the directory of %q", prev, path)
	}
	return nil
}

// Writer writes a manifest's records, one file at a time in ComparePaths
// order, as a zstd stream. Its Finish makes the header and trailer that go
// around them, once the totals are known: the stored manifest is header,
// records and trailer, three zstd frames one after the other, which read
// as one stream.
type Writer struct {
	zw          *zstd.Encoder
	bw          *bufio.Writer
	prev        string
	n           int64
	raw, stored int64
	groups      bool // a file is grouped: SchemaGroups
	buf         []byte
	err         error
}

// NewWriter writes records to w.
func NewWriter(w io.Writer) (*Writer, error) {
	zw, err := chunk.NewCatalogWriter(w)
	if err != nil {
		return nil, err
	}
	return &Writer{zw: zw, bw: bufio.NewWriterSize(zw, 64<<10)}, nil
}

// Add writes f's record. It refuses a file that is invalid or out of
// order, as a reader would.
func (w *Writer) Add(f *File) error {
	if w.err != nil {
		return w.err
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("file %q: %w", f.Path, err)
	}
	if err := order(w.prev, f.Path); err != nil {
		return err
	}
	b, err := AppendRecord(w.buf[:0], f)
	if err != nil {
		return err
	}
	w.buf = b
	if _, err := w.bw.Write(b); err != nil {
		w.err = err
		return err
	}
	w.prev = f.Path
	w.n++
	w.raw += f.Size
	w.stored += f.StoredShare()
	w.groups = w.groups || f.Group != 0
	return nil
}

// Close ends the records' stream.
func (w *Writer) Close() error {
	if w.err != nil {
		w.zw.Close()
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.zw.Close()
		return err
	}
	return w.zw.Close()
}

// Finish returns the frames that go before and after the records (closed
// first) for the manifest m describes; m's totals are set from the records.
func (w *Writer) Finish(m *Manifest) (head, tail []byte, err error) {
	m.Schema = SchemaStream
	if w.groups {
		m.Schema = SchemaGroups
	}
	m.FileCount, m.Raw, m.Stored = w.n, w.raw, w.stored
	h := header{Schema: m.Schema, ID: m.ID, Kind: m.Kind, Cluster: m.Cluster, Node: m.Node, Tag: m.Tag,
		Started: m.Started, Finished: m.Finished, Tool: m.Tool, Meta: m.Meta,
		FileCount: w.n, RawBytes: w.raw, StoredBytes: w.stored}
	hb, err := json.Marshal(&h)
	if err != nil {
		return nil, nil, fmt.Errorf("encode manifest header: %w", err)
	}
	if head, err = frame(append(hb, '\n')); err != nil {
		return nil, nil, err
	}
	tail, err = frame(fmt.Appendf(nil, "{\"end\":%d}\n", w.n))
	return head, tail, err
}

func frame(b []byte) ([]byte, error) {
	zw, err := chunk.NewCatalogWriter(nil)
	if err != nil {
		return nil, err
	}
	defer zw.Close()
	return zw.EncodeAll(b, nil), nil
}

// streamPrefix starts the decompressed form of every manifest, stream or
// not: the header is written with schema first, and a schema of
// SchemaStream or more (isStream) is a stream.
var streamPrefix = []byte(`{"schema":`)

// isStream tells a stream manifest's start from an older JSON document's
// (schema 1 or 2), whatever the stream's schema: a newer one is then
// refused as such ("upgrade s3bak"), not as a document that fails to parse.
func isStream(start []byte) bool {
	rest, ok := bytes.CutPrefix(start, streamPrefix)
	if !ok {
		return false
	}
	digits := 0
	for digits < len(rest) && rest[digits] >= '0' && rest[digits] <= '9' {
		digits++
	}
	return digits > 1 || digits == 1 && rest[0] >= '0'+SchemaStream
}

// MaxRecordSize bounds one record's line: a file of 300 GB in 1 MiB chunks
// lists some 5 MB of chunks.
const MaxRecordSize = 64 << 20

// Reader reads a stored manifest one file at a time. It reads stream
// manifests (schema 3) as they come, checking each record and its order
// as it goes, and older ones (one JSON document) whole, as they were
// written: only those hold all their files in memory.
type Reader struct {
	m    Manifest // header only
	dec  *zstd.Decoder
	br   *bufio.Reader
	prev string
	n    int64
	raw  int64
	stor int64
	done bool
	rd   recordDecoder
	rec  record // the record being read: its chunk list is rd's
	buf  []byte // a line longer than br's buffer

	legacy []File // an older manifest's files
}

// NewReader reads a manifest from r: a stream manifest, or one of an
// older s3bak (compressed JSON or plain JSON), which it reads whole (at
// most MaxDecodedSize).
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(len(zstdMagic))
	if !bytes.Equal(magic, zstdMagic) {
		return legacyReader(br)
	}
	dec, err := chunk.NewCatalogReader(br)
	if err != nil {
		return nil, err
	}
	x := &Reader{dec: dec, br: bufio.NewReaderSize(dec, 64<<10)}
	if start, _ := x.br.Peek(len(streamPrefix) + 2); !isStream(start) {
		// Compressed JSON of an older s3bak.
		defer dec.Close()
		return legacyReader(x.br)
	}
	line, err := x.line()
	if err != nil {
		x.Close()
		return nil, err
	}
	var h header
	if err := json.Unmarshal(line, &h); err != nil {
		x.Close()
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	x.m = Manifest{Schema: h.Schema, ID: h.ID, Kind: h.Kind, Cluster: h.Cluster, Node: h.Node, Tag: h.Tag,
		Started: h.Started, Finished: h.Finished, Tool: h.Tool, Meta: h.Meta,
		FileCount: h.FileCount, Raw: h.RawBytes, Stored: h.StoredBytes}
	if err := x.m.validateHeader(); err != nil {
		x.Close()
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if h.FileCount < 0 || h.RawBytes < 0 || h.StoredBytes < 0 {
		x.Close()
		return nil, fmt.Errorf("%w: negative totals in the header", ErrCorrupt)
	}
	return x, nil
}

// legacyReader reads a manifest of schema 1 or 2 whole.
func legacyReader(r io.Reader) (*Reader, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDecodedSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(b) > MaxDecodedSize {
		return nil, fmt.Errorf("%w: more than %d bytes of JSON", ErrCorrupt, MaxDecodedSize)
	}
	m, err := decodeDocument(b)
	if err != nil {
		return nil, err
	}
	// Its files stay in the order they were written: they are all in
	// memory, and were checked whole.
	files := m.Files
	m.Files = nil
	return &Reader{m: *m, legacy: files}, nil
}

// Manifest is the manifest's header: everything but its files. Its
// totals are those the header states; Next checks them.
func (x *Reader) Manifest() *Manifest {
	m := x.m
	return &m
}

// Next returns the next file, or io.EOF after the last one once the
// trailer and the totals are checked.
func (x *Reader) Next() (File, error) {
	if x.legacy != nil || x.dec == nil {
		if len(x.legacy) == 0 {
			return File{}, io.EOF
		}
		f := x.legacy[0]
		x.legacy = x.legacy[1:]
		if len(x.legacy) == 0 {
			x.legacy = nil
		}
		return f, nil
	}
	if x.done {
		return File{}, io.EOF
	}
	f, err := x.next()
	if err != nil && err != io.EOF {
		return File{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return f, err
}

func (x *Reader) next() (File, error) {
	line, err := x.line()
	if err != nil {
		return File{}, err
	}
	r := &x.rec
	if err := x.rd.decode(line, r); err != nil {
		return File{}, fmt.Errorf("record %d: %v", x.n+1, err)
	}
	if r.End != nil {
		return File{}, x.end(*r.End)
	}
	if x.n >= x.m.FileCount {
		return File{}, fmt.Errorf("more files than the %d the header states", x.m.FileCount)
	}
	f, err := r.file()
	if err != nil {
		return File{}, err
	}
	if err := f.Validate(); err != nil {
		return File{}, fmt.Errorf("file %d (%q): %v", x.n+1, f.Path, err)
	}
	if err := order(x.prev, f.Path); err != nil {
		return File{}, err
	}
	x.prev = f.Path
	x.n++
	x.raw += f.Size
	x.stor += f.StoredShare()
	return f, nil
}

// end checks the trailer and that nothing follows it.
func (x *Reader) end(n int64) error {
	x.done = true
	switch {
	case n != x.n || n != x.m.FileCount:
		return fmt.Errorf("the trailer counts %d files, the header %d, the records %d", n, x.m.FileCount, x.n)
	case x.raw != x.m.Raw || x.stor != x.m.Stored:
		return fmt.Errorf("the files add up to %d raw and %d stored bytes, the header states %d and %d", x.raw, x.stor, x.m.Raw, x.m.Stored)
	}
	if _, err := x.br.ReadByte(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("data after the trailer")
		}
		return err
	}
	return io.EOF
}

// maxKeptLine bounds the memory a Reader keeps for the next long line: a
// large file's record is some 20 bytes a chunk, longer than br's buffer
// from a few thousand chunks on, and need not take memory anew each time.
const maxKeptLine = 1 << 20

// line reads one line, without its newline; a stream that ends before
// the trailer is cut short. The line is valid until the next call.
func (x *Reader) line() ([]byte, error) {
	var buf []byte
	if cap(x.buf) <= maxKeptLine {
		buf = x.buf[:0]
	}
	for {
		part, err := x.br.ReadSlice('\n')
		if err == nil {
			if len(buf) == 0 {
				return part[:len(part)-1], nil
			}
			x.buf = append(buf, part[:len(part)-1]...)
			return x.buf, nil
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				return nil, fmt.Errorf("cut short after %d files (no trailer)", x.n)
			}
			return nil, err
		}
		if len(buf)+len(part) > MaxRecordSize {
			return nil, fmt.Errorf("a record longer than %d bytes", MaxRecordSize)
		}
		buf = append(buf, part...)
	}
}

// Close releases the decompressor.
func (x *Reader) Close() {
	if x.dec != nil {
		x.dec.Close()
	}
}

// ReadAll reads every file into a manifest; for tests and small manifests.
func (x *Reader) ReadAll() (*Manifest, error) {
	m := x.Manifest()
	for {
		f, err := x.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, f)
	}
	m.FileCount, m.Raw, m.Stored = int64(len(m.Files)), m.rawBytes(), m.storedBytes()
	return m, nil
}
