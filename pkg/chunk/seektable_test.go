package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A reader of zstd's seekable format, for the tests: they prove that every
// stored object ends in a seek table any seekable-zstd reader understands.
// s3bak itself never parses one: restore and verify take each chunk's place
// from the manifest.

// maxFrames bounds a seek table we are willing to parse (the format's own limit).
const maxFrames = 0x8000000

// errNoSeekTable means the bytes do not end in a seekable-format seek table.
var errNoSeekTable = errors.New("no zstd seek table at the end of the object")

// parseSeekTableFooter reads the 9-byte footer and returns how many bytes the
// whole seek-table frame takes at the end of the object.
func parseSeekTableFooter(footer []byte) (tableSize int64, err error) {
	if len(footer) != seekFooterSize {
		return 0, fmt.Errorf("seek table footer: want %d bytes, got %d", seekFooterSize, len(footer))
	}
	if binary.LittleEndian.Uint32(footer[5:]) != seekableMagic {
		return 0, errNoSeekTable
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

// parseSeekTable decodes a whole seek-table frame (as sized by
// parseSeekTableFooter) into chunks with their offsets filled in.
func parseSeekTable(b []byte) ([]Chunk, error) {
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
	size, err := parseSeekTableFooter(footer)
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
