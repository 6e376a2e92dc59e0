package restore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// checkedReads is how many times bytes that fail their check (a chunk's
// CRC32C, an object's size) are read, each time with a fresh GET, before
// they are called corrupt: a bit flipped on the way (a NIC, a proxy, a
// middlebox) is not damage in the bucket, and only damage is ErrVerify.
const checkedReads = 2

// readChecked runs read (a fresh GET and the check of its bytes) again
// when the bytes it got failed their check. Only a failure that repeats is
// reported as ErrVerify; a read that then fails otherwise (the network,
// the server) reports that failure instead.
func readChecked(ctx context.Context, read func() error) error {
	err := read()
	for n := 1; n < checkedReads && errors.Is(err, ErrVerify) && ctx.Err() == nil; n++ {
		err = again(read())
	}
	return err
}

// again marks a verification failure found on a second, fresh read.
func again(err error) error {
	if errors.Is(err, ErrVerify) {
		return fmt.Errorf("%w (the same on a fresh read)", err)
	}
	return err
}

// rangeSize is the span of one GET of an uncompressed object: large enough
// that request overhead vanishes, small enough to spread a file over many
// connections. A variable so tests can use small files.
var rangeSize int64 = 16 << 20

// layout expands a file's chunk index into offsets in its object (a
// packed file's start in the pack first). An uncompressed object has no
// index; it is cut into rangeSize pieces without checksums (the file's
// SHA-256 still covers every byte). A grouped file's one chunk is its
// group's: all of the group's raw bytes.
func layout(f manifest.File) []chunk.Chunk {
	if f.Group != 0 {
		c := f.Chunks[0]
		return []chunk.Chunk{{RawLen: f.Group, StoredOff: f.Offset, StoredLen: c.Stored, Compressed: true, CRC32C: c.CRC32C}}
	}
	var out []chunk.Chunk
	if f.Compression != chunk.Zstd {
		for off := int64(0); off < f.Size; off += rangeSize {
			n := min(rangeSize, f.Size-off)
			out = append(out, chunk.Chunk{RawOff: off, RawLen: n, StoredOff: f.Offset + off, StoredLen: n})
		}
		return out
	}
	out = make([]chunk.Chunk, len(f.Chunks))
	stored := f.Offset
	for i, c := range f.Chunks {
		raw := int64(i) * f.ChunkSize
		out[i] = chunk.Chunk{
			RawOff: raw, RawLen: min(f.ChunkSize, f.Size-raw),
			StoredOff: stored, StoredLen: c.Stored,
			Compressed: true, CRC32C: c.CRC32C,
		}
		stored += c.Stored
	}
	return out
}

// maxGroupMemory bounds the memory of adjacent chunks fetched with one GET:
// tiny chunks (those of small files, or very compressible data) would
// otherwise cost a request each.
const maxGroupMemory = 2 << 20

// group is what one GET fetches: the adjacent chunks [first, end).
type group struct {
	first, end           int
	storedOff, storedLen int64
	rawOff, rawLen       int64
	// whole fetches the whole object (seek table included) in one plain
	// GET, which proves its size as well: a file of one group then costs
	// one request, not a HEAD and a GET.
	whole bool
	// inPlace: every chunk of the group is stored as raw zstd blocks (see
	// rawFrameLen), so its bytes are decoded where they were fetched and
	// the group needs no second buffer.
	inPlace bool
	// crc checks each chunk's CRC32C as it is decoded. A file's first read
	// leaves it to the file's SHA-256 (the CRC32C is a tenth of a
	// restore's CPU); the second read of a file that failed its SHA-256
	// checks every chunk, so that a chunk damaged on the way is read again
	// alone and one damaged in the bucket is named. Packed files, small,
	// are always checked.
	crc bool
}

// fetchLen is the bytes the group's GET returns.
func (g group) fetchLen(f manifest.File) int64 {
	if g.whole {
		return f.StoredSize
	}
	return g.storedLen
}

// decodedApart tells whether the group is decoded into a buffer of its
// own: a compressed object whose chunks are not all raw blocks.
func (g group) decodedApart(f manifest.File) bool {
	return f.Compression == chunk.Zstd && !g.inPlace
}

// memory is what the group holds from its GET until it is hashed: the
// stored bytes and, when decoded apart, the decoded ones.
func (g group) memory(f manifest.File) int64 {
	if !g.decodedApart(f) {
		return g.fetchLen(f)
	}
	return g.fetchLen(f) + g.rawLen
}

// plan groups adjacent chunks while a group's memory stays under limit; a
// chunk larger than limit is a group of its own.
func plan(f manifest.File, chunks []chunk.Chunk, limit int64) []group {
	var groups []group
	for i, c := range chunks {
		raw := f.Compression == chunk.Zstd && rawFramed(c)
		if n := len(groups); n > 0 {
			g := groups[n-1]
			g.end = i + 1
			g.storedLen += c.StoredLen
			g.rawLen += c.RawLen
			g.inPlace = g.inPlace && raw
			if g.memory(f) <= limit {
				groups[n-1] = g
				continue
			}
		}
		groups = append(groups, group{first: i, end: i + 1,
			storedOff: c.StoredOff, storedLen: c.StoredLen, rawOff: c.RawOff, rawLen: c.RawLen, inPlace: raw})
	}
	if len(groups) == 1 && !manifest.IsPackKey(f.Key) {
		groups[0].whole = true
	}
	return groups
}

// decodeGroup decodes the group's chunks from stored, appending them to dst
// in order: adjacent chunks are adjacent raw bytes.
func decodeGroup(dec *chunk.Decoder, key string, chunks []chunk.Chunk, g group, stored, dst []byte) ([]byte, error) {
	var err error
	for i := g.first; i < g.end; i++ {
		c := chunks[i]
		off := c.StoredOff - g.storedOff
		dst, err = decodeChunk(dec, key, i, len(chunks), c, stored[off:off+c.StoredLen], dst, g.crc)
		if err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// decodeChunk decodes and checks chunk i of n; a failure names the object
// and the chunk, so a damaged object can be found and its damage located.
func decodeChunk(dec *chunk.Decoder, key string, i, n int, c chunk.Chunk, stored, dst []byte, crc bool) ([]byte, error) {
	decode := dec.Decode
	if crc {
		decode = dec.DecodeChunk
	}
	out, err := decode(dst, stored, chunk.Zstd, c)
	if err != nil {
		return nil, fmt.Errorf("%w: object %s: chunk %d of %d (raw bytes %d-%d): %w",
			ErrVerify, key, i, n, c.RawOff, c.RawOff+c.RawLen-1, err)
	}
	return out, nil
}

// readAttempts bounds the tries of one GET whose body broke off. The SDK
// retries requests, but not the reading of a body it has handed over.
const readAttempts = 3

// get fills buf with one GET: the len(buf) bytes at off, or, when whole, the
// whole object, which must then be exactly len(buf) bytes long.
func get(ctx context.Context, c *transfer.Client, key string, off int64, buf []byte, whole bool) error {
	var err error
	for range readAttempts {
		var retry bool
		retry, err = getOnce(ctx, c, key, off, buf, whole)
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return err
}

// getOnce is one try of get; retry says whether another may succeed.
func getOnce(ctx context.Context, c *transfer.Client, key string, off int64, buf []byte, whole bool) (retry bool, err error) {
	n := int64(len(buf))
	if whole {
		off, n = 0, 0 // Get reads the whole object when n is 0
	}
	body, err := c.Get(ctx, key, off, n)
	if errors.Is(err, transfer.ErrNotFound) {
		// The bucket answered: the object is not there. A verification
		// failure (exit 5), unlike a server that fails (exit 1).
		return false, fmt.Errorf("%w: object %s is missing", ErrVerify, key)
	}
	if err != nil {
		return false, fmt.Errorf("object %s: %w", key, err)
	}
	defer body.Close()
	got, err := readFull(body, buf)
	if err == nil && whole && got == len(buf) {
		// The object's end, where its stored checksum is checked too.
		var more int
		if more, err = readFull(body, make([]byte, 1)); err == nil && more > 0 {
			return false, fmt.Errorf("%w: object %s has more than the %d bytes the manifest records", ErrVerify, key, len(buf))
		}
	}
	switch {
	case errors.Is(err, transfer.ErrChecksum):
		// Damaged bytes, not a broken connection: readChecked reads them
		// once more, and only a repeat is corruption.
		return false, fmt.Errorf("%w: object %s: %w", ErrVerify, key, err)
	case err != nil:
		return true, fmt.Errorf("object %s: read %d bytes at %d: %w", key, len(buf), off, err)
	case got < len(buf) && whole:
		return false, fmt.Errorf("%w: object %s has %d bytes, the manifest records %d", ErrVerify, key, got, len(buf))
	case got < len(buf):
		return false, fmt.Errorf("%w: object %s ends at %d, the manifest records bytes up to %d", ErrVerify, key, off+int64(got), off+int64(len(buf)))
	}
	return false, nil
}

// readFull reads until buf is full or r ends. Unlike io.ReadFull it tells a
// clean end of the body (a short object: got < len(buf), nil error) from a
// broken one (a transport error, worth a retry).
func readFull(r io.Reader, buf []byte) (int, error) {
	got := 0
	for got < len(buf) {
		n, err := r.Read(buf[got:])
		got += n
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}
