package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// Wire constants of the zstd frame format (RFC 8878) and of zstd's seekable
// format (contrib/seekable_format), which s3bak objects follow so that any
// zstd decoder reads them and any seekable-zstd reader can seek in them.
const (
	zstdMagic       = 0xFD2FB528
	skippableMagic  = 0x184D2A5E // first of the 16 skippable magics; the seekable format uses this one
	seekableMagic   = 0x8F92EAB1
	seekFooterSize  = 9
	seekEntrySize   = 8 // compressed size u32, decompressed size u32; no per-frame checksum
	maxRawBlockSize = 128 << 10
	// MaxChunkSize is the seekable format's limit on one frame's decompressed size.
	MaxChunkSize = 1 << 30
)

// appendRawFrame appends p to dst as one zstd frame made of raw blocks. Such a
// frame costs 3 bytes per 128 KiB and decodes as a copy: it is how already
// compressed data (most SSTable Data.db files) is stored without wasting CPU,
// while the object stays a valid zstd stream. It sums the raw and the
// stored bytes, block by block as they are copied.
func appendRawFrame(dst, p []byte) ([]byte, coded) {
	// Frame header: descriptor 0x80 = 4-byte Frame_Content_Size, not single
	// segment, no checksum, no dictionary; window descriptor 0x38 = 128 KiB,
	// enough because raw blocks never refer back.
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, zstdMagic)
	dst = append(dst, 0x80, 0x38)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p)))
	if len(p) == 0 {
		dst = append(dst, 1, 0, 0) // one empty last raw block
		return dst, coded{storedCRC: CRC32C(dst[start:])}
	}
	var c coded
	for len(p) > 0 {
		n := min(len(p), maxRawBlockSize)
		hdr := uint32(n) << 3 // block type 0 = raw
		if n == len(p) {
			hdr |= 1 // last block
		}
		dst = append(dst, byte(hdr), byte(hdr>>8), byte(hdr>>16))
		dst = append(dst, p[:n]...)
		c.rawCRC = UpdateCRC32C(c.rawCRC, p[:n])
		c.storedCRC = UpdateCRC32C(c.storedCRC, dst[start:])
		start = len(dst)
		p = p[n:]
	}
	return dst, c
}

// MaxStoredSize is the most bytes a chunk of chunkSize raw bytes is stored
// in: a chunk that compresses to more is stored as a raw frame.
func MaxStoredSize(chunkSize int64) int64 { return int64(rawFrameSize(int(chunkSize))) }

// BufferSize is the capacity of the buffers an Encoder codes chunks of
// chunkSize into: the largest stored form of a chunk, and room for
// encoders that ask for a little more before they write (see NewEncoder).
// A Keeper holds buffers of this size.
func BufferSize(chunkSize int64) int64 { return MaxStoredSize(chunkSize) + 64 }

// rawFrameSize is the length of appendRawFrame(nil, make([]byte, n)).
func rawFrameSize(n int) int {
	blocks := (n + maxRawBlockSize - 1) / maxRawBlockSize
	if blocks == 0 {
		blocks = 1
	}
	return 10 + 3*blocks + n
}

// appendSeekTable appends the seekable format's skippable frame that lists
// every chunk's stored and raw length: an entry a chunk, which may be
// several frames.
func appendSeekTable(dst []byte, chunks []Chunk) []byte {
	size := len(chunks)*seekEntrySize + seekFooterSize
	dst = binary.LittleEndian.AppendUint32(dst, skippableMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(size))
	for _, c := range chunks {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(c.StoredLen))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(c.RawLen))
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(chunks)))
	dst = append(dst, 0) // descriptor: no checksums
	return binary.LittleEndian.AppendUint32(dst, seekableMagic)
}

// SeekTableSize is the number of bytes appendSeekTable adds for n chunks.
func SeekTableSize(n int) int64 { return int64(8 + n*seekEntrySize + seekFooterSize) }

// errFrame: the bytes are not whole zstd frames.
var errFrame = errors.New("not a whole zstd frame")

// walkFrame returns the length of the zstd or skippable frame b begins
// with, and its number of blocks, from its header and its blocks' headers
// (RFC 8878, 3.1.1.2): the decoder checks the rest.
func walkFrame(b []byte) (size, blocks int, err error) {
	var h zstd.Header
	if err := h.Decode(b); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errFrame, err)
	}
	if h.Skippable {
		if n := int64(h.HeaderSize) + int64(h.SkippableSize); n <= int64(len(b)) {
			return int(n), 0, nil
		}
		return 0, 0, errFrame
	}
	p := h.HeaderSize
	for last := false; !last; blocks++ {
		if p+3 > len(b) {
			return 0, 0, errFrame
		}
		bh := int(b[p]) | int(b[p+1])<<8 | int(b[p+2])<<16
		size := bh >> 3
		switch bh >> 1 & 3 {
		case 1: // RLE: one byte stored
			size = 1
		case 3:
			return 0, 0, fmt.Errorf("%w: reserved block type", errFrame)
		}
		p += 3 + size
		last = bh&1 == 1
	}
	if h.HasCheckSum {
		p += 4
	}
	if p > len(b) {
		return 0, 0, errFrame
	}
	return p, blocks, nil
}
