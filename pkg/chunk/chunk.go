// Package chunk turns a file into the bytes s3bak stores, and back.
//
// A file is cut into fixed-size raw chunks. With compression, every chunk
// is coded on its own: one zstd frame, frames of one block each for data
// compressed before (see encodeAll), or a frame of raw blocks when the
// chunk does not compress. The object ends with a seek table laid out as
// zstd's seekable format's, an entry a chunk (not a frame, as that format
// has it). The object is therefore one valid zstd stream that any zstd
// decoder reads, and each chunk can be fetched with a ranged GET and
// decoded alone. Without compression the object is the file itself.
package chunk

import (
	"fmt"
	"runtime"
	"strings"
)

// Mode says how chunks are stored.
type Mode string

const (
	// Auto compresses chunks that compress and stores the others raw.
	Auto Mode = "auto"
	// Zstd compresses every chunk, falling back to raw only when zstd
	// would make it larger.
	Zstd Mode = "zstd"
	// None stores the file's bytes unchanged.
	None Mode = "none"
)

// ParseMode accepts the --compression flag's values.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(s)); m {
	case Auto, Zstd, None:
		return m, nil
	}
	return "", fmt.Errorf("compression %q: want auto, zstd or none", s)
}

// DefaultChunkSize balances parallelism inside one file against the number
// of requests and the size of the chunk index, and leaves room for a
// compressing stream beside many small files in a modest memory budget.
// s3bak's --chunk-size defaults to it.
const DefaultChunkSize = 8 << 20

// MinChunkSize is the smallest chunk size Options accept.
const MinChunkSize = 4 << 10

// Options configure an Encoder.
type Options struct {
	Mode      Mode
	ChunkSize int     // raw bytes per chunk; DefaultChunkSize when 0
	Level     int     // zstd level 1..22; 3 when 0
	Workers   int     // chunks compressed at once per file; GOMAXPROCS when 0
	MaxRatio  float64 // Auto stores a chunk raw when compressed/raw exceeds this; 0.95 when 0
}

func (o Options) withDefaults() (Options, error) {
	if o.Mode == "" {
		o.Mode = Auto
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return o, err
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < MinChunkSize || o.ChunkSize > MaxChunkSize {
		return o, fmt.Errorf("chunk size %d: want 4 KiB to 1 GiB", o.ChunkSize)
	}
	if o.Level == 0 {
		o.Level = 3
	}
	if o.Level < 1 || o.Level > 22 {
		return o, fmt.Errorf("zstd level %d: want 1 to 22", o.Level)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MaxRatio == 0 {
		o.MaxRatio = 0.95
	}
	return o, nil
}

// Chunk locates one chunk in the file (raw) and in the object (stored).
type Chunk struct {
	RawOff, RawLen       int64
	StoredOff, StoredLen int64
	// Compressed is false when the chunk is stored as raw blocks (or the
	// whole object is uncompressed).
	Compressed bool
	// CRC32C of the raw chunk: lets a single chunk be verified alone and
	// catches a file that changed between two reads.
	CRC32C uint32
	// StoredCRC32C is the CRC32C of the stored chunk, for the checksum of
	// the upload that carries it (CombineCRC32C). Only a chunk just coded
	// has it: it is not recorded.
	StoredCRC32C uint32
}

// Layout describes one stored object.
type Layout struct {
	Mode       Mode // None, or Zstd for an object of zstd frames (Auto encodes to Zstd objects)
	ChunkSize  int64
	RawSize    int64
	StoredSize int64 // including the seek table
	Chunks     []Chunk
	// StoredCRC32C is the CRC32C of the whole stored object, as
	// EncodeBytes and EncodeGroup return it (not EncodeFrom: the uploads
	// of a stream are its parts, summed by chunk).
	StoredCRC32C uint32
}

// CompressedChunks counts chunks that zstd actually compressed.
func (l *Layout) CompressedChunks() int {
	n := 0
	for _, c := range l.Chunks {
		if c.Compressed {
			n++
		}
	}
	return n
}

// NumChunks is how many chunks a file of size bytes has.
func NumChunks(size, chunkSize int64) int {
	if size == 0 {
		return 0
	}
	return int((size + chunkSize - 1) / chunkSize)
}
