package chunk

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestWalkFrameFindsEachFramesEnd: the frame walk that lets a chunk's
// frames decode in place finds the end of every kind of frame an object
// holds, or another zstd writer could, and refuses a frame cut short.
func TestWalkFrameFindsEachFramesEnd(t *testing.T) {
	withSum, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	defer withSum.Close()
	for _, tc := range []struct {
		name   string
		frame  []byte
		blocks int
	}{
		{"raw blocks", rawFrame(fewSymbols(300<<10, 1)), 3},
		{"empty raw frame", rawFrame(nil), 1},
		{"compressed, with a checksum", withSum.EncodeAll(fewSymbols(200<<10, 2), nil), -1},
		{"RLE blocks", withSum.EncodeAll(make([]byte, 300<<10), nil), -1},
		{"skippable (the seek table)", appendSeekTable(nil, []Chunk{{StoredLen: 9, RawLen: 9}}), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := rawFrame([]byte("next"))
			size, blocks, err := walkFrame(append(bytes.Clone(tc.frame), next...))
			if err != nil || size != len(tc.frame) {
				t.Fatalf("walkFrame = %d, %v; want %d", size, err, len(tc.frame))
			}
			if tc.blocks >= 0 && blocks != tc.blocks {
				t.Fatalf("%d blocks, want %d", blocks, tc.blocks)
			}
			for cut := range len(tc.frame) {
				if _, _, err := walkFrame(tc.frame[:cut]); !errors.Is(err, errFrame) {
					t.Fatalf("cut to %d of %d bytes: err %v, want errFrame", cut, len(tc.frame), err)
				}
			}
		})
	}
	var h zstd.Header
	rle := withSum.EncodeAll(make([]byte, 300<<10), nil)
	if err := h.Decode(rle); err != nil || rle[h.HeaderSize]>>1&3 != 1 {
		t.Fatalf("the RLE case's first block is not an RLE block (header %v)", err)
	}
	bad := rawFrame([]byte("abc"))
	bad[10] |= 3 << 1 // after the 10-byte header, the first block's type: reserved
	if _, _, err := walkFrame(bad); !errors.Is(err, errFrame) {
		t.Fatalf("reserved block type: err %v, want errFrame", err)
	}
	if _, _, err := walkFrame([]byte("not zstd at all")); !errors.Is(err, errFrame) {
		t.Fatalf("no magic: err %v, want errFrame", err)
	}
}

// rawFrame is p as one zstd frame of raw blocks.
func rawFrame(p []byte) []byte {
	b, _ := appendRawFrame(nil, p)
	return b
}
