// Package manifest defines the record of one backup: which files, with
// which checksums, stored where and how. A backup exists only once its
// manifest is stored, and the manifest is stored last.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// SchemaVersion is written into every manifest, unless it holds a file
// name that is not valid UTF-8 (SchemaExactNames); a reader refuses newer
// ones rather than guess at fields it does not know.
const SchemaVersion = 1

// SchemaExactNames is the schema of a manifest with a file name that is not
// valid UTF-8: the name's exact bytes are in "path_b64", which an s3bak
// that reads only schema 1 would ignore and restore the file under its
// display name. MaxSchema is the newest schema this s3bak reads.
const (
	SchemaExactNames = 2
	MaxSchema        = SchemaGroups
)

// Manifest is one backup of one node.
type Manifest struct {
	Schema   int               `json:"schema"`
	ID       string            `json:"id"`
	Kind     string            `json:"kind"`
	Cluster  string            `json:"cluster"`
	Node     string            `json:"node"`
	Tag      string            `json:"tag"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Tool     string            `json:"tool"`
	Meta     map[string]string `json:"meta,omitempty"`
	Files    []File            `json:"files"`

	// FileCount, Raw and Stored are the number of files and their raw and
	// stored bytes: a stream manifest's header states them, so that its
	// files need not be read (or held) to know them.
	FileCount   int64 `json:"-"`
	Raw, Stored int64 `json:"-"`
}

// File is one backed-up file.
type File struct {
	// Path is where the file is restored, relative to the target: the
	// exact bytes of its name, which need not be valid UTF-8 (see
	// exactName for its JSON form).
	Path    string      `json:"path"`
	Size    int64       `json:"size"`
	ModTime time.Time   `json:"mtime"`
	Mode    fs.FileMode `json:"mode"`
	SHA256  string      `json:"sha256"`
	Key     string      `json:"key"` // relative to the node's root in the bucket
	// Offset is where the file's stored bytes start in the object: small
	// files are packed together, many to an object (see PackKey).
	Offset      int64      `json:"offset,omitempty"`
	StoredSize  int64      `json:"stored_size"`
	Compression chunk.Mode `json:"compression"`
	ChunkSize   int64      `json:"chunk_size,omitempty"`
	Chunks      []Chunk    `json:"chunks,omitempty"`
	// Group, when not 0, says that the stored bytes are those of a group:
	// small files compressed together, one after the other, so that they
	// share one frame's entropy tables and each other's matches. They
	// decode to Group raw bytes, one chunk (Chunks has its CRC32C; there
	// is no ChunkSize), of which the file's are the Size bytes from Skip.
	// Grouped files are packed, and need SchemaGroups.
	Group int64 `json:"group,omitempty"`
	Skip  int64 `json:"skip,omitempty"`
	// Ino and Digest are the inode and the database's own digest the
	// content was read from (see source.File.Fingerprint): with the path,
	// size and time they let the next backup know an unchanged file
	// without reading it. Stream manifests only.
	Ino    uint64 `json:"-"`
	Digest string `json:"-"`
}

// Chunk is one entry of a file's chunk index: its stored length and the
// CRC32C of its raw bytes. Offsets follow from the order and ChunkSize.
type Chunk struct {
	Stored int64  `json:"s"`
	CRC32C uint32 `json:"c"`
}

// RawBytes is the files' size: the sum of Files when they are read, else
// what the header states.
func (m *Manifest) RawBytes() int64 {
	if len(m.Files) == 0 {
		return m.Raw
	}
	return m.rawBytes()
}

// StoredBytes sums the files' stored sizes (StoredShare); a deduplicated object
// counts once per file.
func (m *Manifest) StoredBytes() int64 {
	if len(m.Files) == 0 {
		return m.Stored
	}
	return m.storedBytes()
}

// Count is the number of files: len(Files) when they are read, else what
// the header states.
func (m *Manifest) Count() int64 {
	if len(m.Files) == 0 {
		return m.FileCount
	}
	return int64(len(m.Files))
}

func (m *Manifest) rawBytes() (n int64) {
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

func (m *Manifest) storedBytes() (n int64) {
	for _, f := range m.Files {
		n += f.StoredShare()
	}
	return n
}

func sortFiles(files []File) {
	slices.SortFunc(files, func(a, b File) int { return ComparePaths(a.Path, b.Path) })
}

// ChunksOf turns an encoder's layout into manifest chunk entries.
func ChunksOf(l *chunk.Layout) []Chunk {
	out := make([]Chunk, len(l.Chunks))
	for i, c := range l.Chunks {
		out[i] = Chunk{Stored: c.StoredLen, CRC32C: c.CRC32C}
	}
	return out
}

// StoredShare is the stored bytes f accounts for: its stored size, but for
// a grouped file its share of the group's, in proportion to its raw bytes
// (rounded down), so that a group's files sum to its stored size once,
// not once a file.
func (f *File) StoredShare() int64 {
	if f.Group == 0 {
		return f.StoredSize
	}
	return f.StoredSize * f.Size / f.Group
}

// CopyStored gives f the stored object of src, a file of the same content.
func (f *File) CopyStored(src *File) {
	f.Key, f.Offset, f.StoredSize, f.Compression = src.Key, src.Offset, src.StoredSize, src.Compression
	f.ChunkSize, f.Chunks, f.Group, f.Skip = src.ChunkSize, src.Chunks, src.Group, src.Skip
}

// exactName is the JSON form of a File whose name is not valid UTF-8. A
// JSON string is UTF-8, and encoding/json writes each invalid byte as
// U+FFFD, so two such names would come back as one, and neither under its
// own name. Such a file's "path" is its display form (DisplayPath) and
// "path_b64" its exact bytes in standard base64, which Decode puts back
// into Path. Only Encode and Decode know this: a File's Path always holds
// the exact bytes.
type exactName struct {
	File
	PathB64 string `json:"path_b64"`
}

// pathB64Key is how the key appears in a manifest that has one (a name
// containing it is written with its quotes escaped).
var pathB64Key = []byte(`"path_b64"`)

// DisplayPath is p for people: valid UTF-8, each byte that is not shown as
// U+FFFD (what JSON made of such names before path_b64).
func DisplayPath(p string) string {
	if utf8.ValidString(p) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		b.WriteRune(r) // utf8.RuneError for an invalid byte
		i += n
	}
	return b.String()
}

// exactNames reports whether a file name needs SchemaExactNames.
func (m *Manifest) exactNames() bool {
	for i := range m.Files {
		if !utf8.ValidString(m.Files[i].Path) {
			return true
		}
	}
	return false
}

// Encode returns the manifest as JSON.
func (m *Manifest) Encode() ([]byte, error) {
	var b bytes.Buffer
	if err := m.WriteJSON(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// EncodeStored returns the manifest as it is stored in the bucket: a
// stream manifest (SchemaStream) of its files in ComparePaths order. A
// backup writes its manifest with a Writer as its files are stored; this
// is for a manifest already whole in memory.
func (m *Manifest) EncodeStored() ([]byte, error) {
	files := slices.Clone(m.Files)
	sortFiles(files)
	var b bytes.Buffer
	w, err := NewWriter(&b)
	if err != nil {
		return nil, err
	}
	for i := range files {
		if err := w.Add(&files[i]); err != nil {
			w.Close()
			return nil, fmt.Errorf("encode manifest: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	c := *m
	head, tail, err := w.Finish(&c)
	if err != nil {
		return nil, err
	}
	return slices.Concat(head, b.Bytes(), tail), nil
}

// WriteJSON writes the manifest as JSON to w, one file at a time: a whole
// json.Marshal (indented, as it was) held the document several times over
// while it grew, hundreds of megabytes for a big node.
func (m *Manifest) WriteJSON(w io.Writer) error {
	head := *m
	head.Files = nil
	exact := m.exactNames()
	if exact {
		head.Schema = max(head.Schema, SchemaExactNames)
	}
	hb, err := json.Marshal(&head)
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	// Files is the last field: the header ends with "files":null}.
	const tail = `null}`
	if !bytes.HasSuffix(hb, []byte(tail)) {
		return fmt.Errorf("encode manifest: unexpected header %q", hb[max(0, len(hb)-20):])
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(hb[:len(hb)-len(tail)])
	bw.WriteByte('[')
	for i, f := range m.Files {
		if i > 0 {
			bw.WriteByte(',')
		}
		var v any = f
		if exact && !utf8.ValidString(f.Path) {
			raw := base64.StdEncoding.EncodeToString([]byte(f.Path))
			f.Path = DisplayPath(f.Path)
			v = exactName{f, raw}
		}
		fb, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode manifest: file %d: %w", i, err)
		}
		if _, err := bw.Write(fb); err != nil {
			return err
		}
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// Decode parses and validates a whole manifest, stream or older. A
// manifest comes from a bucket that other hosts write to, so nothing in it
// is trusted: every path, key, size and chunk index is checked before
// anything acts on it. Errors wrap ErrCorrupt.
func Decode(b []byte) (*Manifest, error) {
	x, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer x.Close()
	m, err := x.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", x.m.ID, err)
	}
	return m, nil
}

// decodeDocument decodes a manifest of schema 1 or 2: one JSON document,
// compressed or not.
func decodeDocument(b []byte) (*Manifest, error) {
	if bytes.HasPrefix(b, zstdMagic) {
		raw, err := decompress(b)
		if err != nil {
			return nil, err
		}
		b = raw
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrCorrupt, err)
	}
	if m.Schema >= SchemaStream {
		return nil, fmt.Errorf("%w: a schema %d manifest must be a stream", ErrCorrupt, m.Schema)
	}
	if bytes.Contains(b, pathB64Key) {
		if err := m.exactPaths(b); err != nil {
			return nil, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, m.ID, err)
		}
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, m.ID, err)
	}
	m.FileCount, m.Raw, m.Stored = int64(len(m.Files)), m.rawBytes(), m.storedBytes()
	return &m, nil
}

// exactPaths puts the exact names of b's "path_b64" fields into m.
func (m *Manifest) exactPaths(b []byte) error {
	var x struct {
		Files []struct {
			PathB64 *string `json:"path_b64"`
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &x); err != nil || len(x.Files) != len(m.Files) {
		return fmt.Errorf("cannot read the files' path_b64 (%v)", err)
	}
	for i, f := range x.Files {
		if f.PathB64 == nil {
			continue
		}
		exact, err := base64.StdEncoding.DecodeString(*f.PathB64)
		if err != nil {
			return fmt.Errorf("file %d (%q): path_b64 is not base64: %w", i, m.Files[i].Path, err)
		}
		m.Files[i].Path = string(exact)
	}
	return nil
}

// zstdMagic starts a zstd frame: a stored manifest (EncodeStored); one
// written before compression is plain JSON and starts with '{'.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// MaxDecodedSize bounds a manifest's JSON once decompressed (about a
// million files): a small hostile object must not inflate without end.
const MaxDecodedSize = 1 << 30

func decompress(b []byte) ([]byte, error) {
	raw, err := chunk.Inflate(b, MaxDecodedSize)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return raw, nil
}
