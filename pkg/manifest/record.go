package manifest

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"time"
	"unicode/utf8"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// record is one file's line: short names, since a node has a million of
// them and every byte of a record is stored once per backup.
type record struct {
	Path        string     `json:"p"`
	PathB64     string     `json:"pb,omitempty"` // the exact name, when it is not UTF-8
	Size        int64      `json:"n"`
	ModTime     int64      `json:"t"` // Unix nanoseconds
	Mode        uint32     `json:"m"`
	SHA256      string     `json:"h"`
	Key         string     `json:"k"`
	Offset      int64      `json:"o,omitempty"`
	StoredSize  int64      `json:"z"`
	Compression chunk.Mode `json:"c"`
	ChunkSize   int64      `json:"cs,omitempty"`
	Chunks      []int64    `json:"ch,omitempty"` // stored size and CRC32C of each chunk, in turn
	Group       int64      `json:"g,omitempty"`
	Skip        int64      `json:"sk,omitempty"`
	Ino         uint64     `json:"i,omitempty"`
	Digest      string     `json:"d,omitempty"`
	End         *int64     `json:"end,omitempty"` // only in the trailer
}

func recordOf(f *File) record {
	r := record{Path: f.Path, Size: f.Size, ModTime: unixNano(f.ModTime), Mode: uint32(f.Mode), SHA256: f.SHA256,
		Key: f.Key, Offset: f.Offset, StoredSize: f.StoredSize, Compression: f.Compression, ChunkSize: f.ChunkSize,
		Group: f.Group, Skip: f.Skip, Ino: f.Ino, Digest: f.Digest}
	if !utf8.ValidString(f.Path) {
		r.Path, r.PathB64 = DisplayPath(f.Path), base64.StdEncoding.EncodeToString([]byte(f.Path))
	}
	if len(f.Chunks) > 0 {
		r.Chunks = make([]int64, 0, 2*len(f.Chunks))
		for _, c := range f.Chunks {
			r.Chunks = append(r.Chunks, c.Stored, int64(c.CRC32C))
		}
	}
	return r
}

func (r *record) file() (File, error) {
	f := File{Path: r.Path, Size: r.Size, ModTime: fromUnixNano(r.ModTime), Mode: fs.FileMode(r.Mode),
		SHA256: r.SHA256, Key: r.Key, Offset: r.Offset, StoredSize: r.StoredSize, Compression: r.Compression,
		ChunkSize: r.ChunkSize, Group: r.Group, Skip: r.Skip, Ino: r.Ino, Digest: r.Digest}
	if r.PathB64 != "" {
		exact, err := base64.StdEncoding.DecodeString(r.PathB64)
		if err != nil {
			return File{}, fmt.Errorf("file %q: pb is not base64: %w", r.Path, err)
		}
		f.Path = string(exact)
	}
	if len(r.Chunks)%2 != 0 {
		return File{}, fmt.Errorf("file %q: odd chunk list", r.Path)
	}
	if len(r.Chunks) > 0 {
		f.Chunks = make([]Chunk, len(r.Chunks)/2)
		for i := range f.Chunks {
			crc := r.Chunks[2*i+1]
			if crc < 0 || crc > 1<<32-1 {
				return File{}, fmt.Errorf("file %q: chunk %d: CRC32C %d out of range", r.Path, i, crc)
			}
			f.Chunks[i] = Chunk{Stored: r.Chunks[2*i], CRC32C: uint32(crc)}
		}
	}
	return f, nil
}

// unixNano is t in Unix nanoseconds; 0 for the zero time (unknown).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// AppendRecord appends f's record line (with its newline) to dst: the
// form of a file in a stream manifest, which checkpoints use too.
func AppendRecord(dst []byte, f *File) ([]byte, error) {
	r := recordOf(f)
	b, err := appendRecordJSON(dst, &r)
	if err != nil {
		return dst, err
	}
	return append(b, '\n'), nil
}

// ParseRecord reads one record line (without its newline) and validates
// the file it describes.
func ParseRecord(line []byte) (File, error) {
	var r record
	var d recordDecoder
	if err := d.decode(line, &r); err != nil {
		return File{}, err
	}
	if r.End != nil {
		return File{}, fmt.Errorf("a trailer, not a record")
	}
	f, err := r.file()
	if err != nil {
		return File{}, err
	}
	if err := f.Validate(); err != nil {
		return File{}, fmt.Errorf("file %q: %w", f.Path, err)
	}
	return f, nil
}
