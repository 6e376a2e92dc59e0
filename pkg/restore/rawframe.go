package restore

import (
	"encoding/binary"
	"fmt"

	"github.com/s3bak/s3bak/pkg/chunk"
)

// A chunk that does not compress (most of a Data.db) is stored as one zstd
// frame of raw blocks: a 10-byte header (magic, descriptor 0x80 with a
// 4-byte content size, window descriptor), then blocks of at most 128 KiB,
// each behind a 3-byte header, the last one marked. Decoding it is a copy;
// done in place, where the GET put the bytes, it needs no second buffer,
// and a restore holds half the memory for such a chunk — twice the chunks
// in flight in the same budget, which is what a restore over a network
// waits for.
const (
	rawFrameHeader = 10
	rawBlockHeader = 3
	rawBlockMax    = 128 << 10
	zstdMagic      = 0xFD2FB528
)

// rawFrameLen is the stored length of n bytes as a frame of raw blocks.
func rawFrameLen(n int64) int64 {
	blocks := max((n+rawBlockMax-1)/rawBlockMax, 1)
	return rawFrameHeader + rawBlockHeader*blocks + n
}

// rawFramed reports whether the stored length of c, a chunk of a zstd
// object, is that of its raw bytes as raw blocks. s3bak stores a chunk
// compressed only when that makes it smaller than this, so such a chunk is
// a frame of raw blocks; one that is not after all (damaged, or written
// otherwise) is decoded the usual way (see unframeGroup). The manifest
// does not say which chunks zstd compressed.
func rawFramed(c chunk.Chunk) bool { return c.StoredLen == rawFrameLen(c.RawLen) }

// isRawFrame checks that stored is exactly one frame of raw blocks holding
// rawLen bytes, without changing it.
func isRawFrame(stored []byte, rawLen int64) bool {
	if len(stored) < rawFrameHeader || binary.LittleEndian.Uint32(stored) != zstdMagic ||
		stored[4] != 0x80 || stored[5] != 0x38 || int64(binary.LittleEndian.Uint32(stored[6:])) != rawLen {
		return false
	}
	var n int64
	for p := rawFrameHeader; ; {
		if len(stored)-p < rawBlockHeader {
			return false
		}
		h := uint32(stored[p]) | uint32(stored[p+1])<<8 | uint32(stored[p+2])<<16
		size := int(h >> 3)
		if h>>1&3 != 0 || size > rawBlockMax || len(stored)-p-rawBlockHeader < size {
			return false // not a raw block, or cut short
		}
		p += rawBlockHeader + size
		n += int64(size)
		if h&1 == 1 { // the last block: the frame must end here
			return p == len(stored) && n == rawLen
		}
	}
}

// unframe moves the raw blocks' bytes of a frame that isRawFrame accepted
// to the front of dst, where dst[:len(frame)] may be the frame itself
// (every byte moves towards the start), and returns how many it moved.
func unframe(dst, frame []byte) int {
	n := 0
	for p := rawFrameHeader; ; {
		h := uint32(frame[p]) | uint32(frame[p+1])<<8 | uint32(frame[p+2])<<16
		size := int(h >> 3)
		n += copy(dst[n:], frame[p+rawBlockHeader:p+rawBlockHeader+size])
		p += rawBlockHeader + size
		if h&1 == 1 {
			return n
		}
	}
}

// unframeGroup decodes an inPlace group's chunks within stored (the
// group's fetched bytes) and checks each chunk's length, and its CRC32C
// when the group says so, as the decoder would; it returns the raw bytes,
// stored[:g.rawLen]. Every frame is checked before the first is moved, as
// moving overwrites the frames before it. A group with a chunk that is not
// a frame of raw blocks after all is decoded by the zstd decoder into a
// buffer of its own, briefly beside the budget: s3bak never writes such a
// chunk, so this is damage, which the decoder names, or an object written
// otherwise, which still restores.
func (r *restorer) unframeGroup(key string, chunks []chunk.Chunk, g group, stored []byte) ([]byte, error) {
	frame := func(i int) []byte {
		off := chunks[i].StoredOff - g.storedOff
		return stored[off : off+chunks[i].StoredLen]
	}
	for i := g.first; i < g.end; i++ {
		if !isRawFrame(frame(i), chunks[i].RawLen) {
			tmp := r.bufs.get(g.rawLen)
			defer r.bufs.put(tmp)
			raw, err := decodeGroup(r.dec, key, chunks, g, stored, (*tmp)[:0])
			if err != nil {
				return nil, err
			}
			return stored[:copy(stored, raw)], nil
		}
	}
	var n int64
	for i := g.first; i < g.end; i++ {
		c := chunks[i]
		raw := stored[n : n+int64(unframe(stored[n:], frame(i)))]
		if g.crc && chunk.CRC32C(raw) != c.CRC32C {
			return nil, fmt.Errorf("%w: object %s: chunk %d of %d (raw bytes %d-%d): %w: chunk at raw offset %d: CRC32C mismatch",
				ErrVerify, key, i, len(chunks), c.RawOff, c.RawOff+c.RawLen-1, chunk.ErrCorrupt, c.RawOff)
		}
		n += int64(len(raw))
	}
	return stored[:n], nil
}
