package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
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
	// maxFrames bounds a seek table we are willing to parse (the format's own limit).
	maxFrames = 0x8000000
)

// appendRawFrame appends p to dst as one zstd frame made of raw blocks. Such a
// frame costs 3 bytes per 128 KiB and decodes as a copy: it is how already
// compressed data (most SSTable Data.db files) is stored without wasting CPU,
// while the object stays a valid zstd stream.
func appendRawFrame(dst, p []byte) []byte {
	// Frame header: descriptor 0x80 = 4-byte Frame_Content_Size, not single
	// segment, no checksum, no dictionary; window descriptor 0x38 = 128 KiB,
	// enough because raw blocks never refer back.
	dst = binary.LittleEndian.AppendUint32(dst, zstdMagic)
	dst = append(dst, 0x80, 0x38)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p)))
	if len(p) == 0 {
		return append(dst, 1, 0, 0) // one empty last raw block
	}
	for len(p) > 0 {
		n := min(len(p), maxRawBlockSize)
		hdr := uint32(n) << 3 // block type 0 = raw
		if n == len(p) {
			hdr |= 1 // last block
		}
		dst = append(dst, byte(hdr), byte(hdr>>8), byte(hdr>>16))
		dst = append(dst, p[:n]...)
		p = p[n:]
	}
	return dst
}

// rawFrameSize is len(appendRawFrame(nil, make([]byte, n))).
func rawFrameSize(n int) int {
	blocks := (n + maxRawBlockSize - 1) / maxRawBlockSize
	if blocks == 0 {
		blocks = 1
	}
	return 10 + 3*blocks + n
}

// appendSeekTable appends the seekable format's skippable frame that lists
// every chunk's stored and raw length.
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

// ErrNoSeekTable means the bytes do not end in a seekable-format seek table.
var ErrNoSeekTable = errors.New("no zstd seek table at the end of the object")

// ParseSeekTableFooter reads the 9-byte footer and returns how many bytes the
// whole seek-table frame takes at the end of the object.
func ParseSeekTableFooter(footer []byte) (tableSize int64, err error) {
	if len(footer) != seekFooterSize {
		return 0, fmt.Errorf("seek table footer: want %d bytes, got %d", seekFooterSize, len(footer))
	}
	if binary.LittleEndian.Uint32(footer[5:]) != seekableMagic {
		return 0, ErrNoSeekTable
	}
	if footer[4]&0x7c != 0 {
		return 0, fmt.Errorf("seek table: reserved descriptor bits set (%#x)", footer[4])
	}
	n := binary.LittleEndian.Uint32(footer)
	if n > maxFrames {
		return 0, fmt.Errorf("seek table: %d frames exceeds the format's limit", n)
	}
	entry := int64(seekEntrySize)
	if footer[4]&0x80 != 0 {
		entry += 4
	}
	return 8 + int64(n)*entry + seekFooterSize, nil
}

// ParseSeekTable decodes a whole seek-table frame (as sized by
// ParseSeekTableFooter) into chunks with their offsets filled in.
func ParseSeekTable(b []byte) ([]Chunk, error) {
	if len(b) < 8+seekFooterSize {
		return nil, fmt.Errorf("seek table: %d bytes is too short", len(b))
	}
	if binary.LittleEndian.Uint32(b) != skippableMagic {
		return nil, fmt.Errorf("seek table: bad skippable frame magic")
	}
	if int(binary.LittleEndian.Uint32(b[4:])) != len(b)-8 {
		return nil, fmt.Errorf("seek table: frame size does not match")
	}
	footer := b[len(b)-seekFooterSize:]
	size, err := ParseSeekTableFooter(footer)
	if err != nil {
		return nil, err
	}
	if size != int64(len(b)) {
		return nil, fmt.Errorf("seek table: %d bytes, footer says %d", len(b), size)
	}
	entry := seekEntrySize
	if footer[4]&0x80 != 0 {
		entry += 4
	}
	n := int(binary.LittleEndian.Uint32(footer))
	chunks := make([]Chunk, n)
	var rawOff, storedOff int64
	for i := range chunks {
		e := b[8+i*entry:]
		c := Chunk{
			RawOff: rawOff, StoredOff: storedOff,
			StoredLen: int64(binary.LittleEndian.Uint32(e)),
			RawLen:    int64(binary.LittleEndian.Uint32(e[4:])),
		}
		rawOff += c.RawLen
		storedOff += c.StoredLen
		chunks[i] = c
	}
	return chunks, nil
}
