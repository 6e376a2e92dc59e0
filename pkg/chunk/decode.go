package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// ErrCorrupt means stored bytes do not decode to what the layout promises.
var ErrCorrupt = errors.New("stored data is corrupt")

// Decoder turns stored chunks back into raw bytes. It is safe for
// concurrent use.
type Decoder struct {
	zdec *zstd.Decoder
}

// NewDecoder returns a Decoder for up to workers chunks at once.
func NewDecoder(workers int) (*Decoder, error) {
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(max(workers, 1)),
		zstd.WithDecoderMaxMemory(MaxChunkSize+1<<20),
		// DecodeAll stops at the room the caller gives it: a hostile object
		// that inflates far past its chunk's recorded size is refused once
		// it has filled that room, not after it has taken gigabytes.
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderLowmem(false))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &Decoder{zdec: d}, nil
}

// Close releases the decoder.
func (d *Decoder) Close() { d.zdec.Close() }

// DecodeChunk decodes the stored bytes of one chunk, appending to dst, and
// checks its length and CRC32C against c.
func (d *Decoder) DecodeChunk(dst, stored []byte, mode Mode, c Chunk) ([]byte, error) {
	start := len(dst)
	dst, err := d.Decode(dst, stored, mode, c)
	if err != nil {
		return nil, err
	}
	if CRC32C(dst[start:]) != c.CRC32C {
		return nil, fmt.Errorf("%w: chunk at raw offset %d: CRC32C mismatch", ErrCorrupt, c.RawOff)
	}
	return dst, nil
}

// Decode is DecodeChunk without the CRC32C: for a reader that checks the
// bytes otherwise (a restore hashes every file with SHA-256, and checks
// the chunks' CRC32Cs only to find which chunk of a file that failed it is
// damaged). The stored and decoded lengths are still checked.
func (d *Decoder) Decode(dst, stored []byte, mode Mode, c Chunk) ([]byte, error) {
	if int64(len(stored)) != c.StoredLen {
		return nil, fmt.Errorf("%w: chunk at raw offset %d: got %d stored bytes, want %d", ErrCorrupt, c.RawOff, len(stored), c.StoredLen)
	}
	start := len(dst)
	if mode == None {
		dst = append(dst, stored...)
	} else {
		var err error
		if dst, err = d.decodeFrames(dst, stored, int(c.RawLen)); err != nil {
			return nil, fmt.Errorf("%w: chunk at raw offset %d: %v", ErrCorrupt, c.RawOff, err)
		}
	}
	if n := len(dst) - start; int64(n) != c.RawLen {
		return nil, fmt.Errorf("%w: chunk at raw offset %d decodes to %d bytes, want %d", ErrCorrupt, c.RawOff, n, c.RawLen)
	}
	return dst, nil
}

// decodeFrames appends the frames of stored, which decode to rawLen bytes,
// to dst. Each frame is decoded on its own into an empty slice at the end of
// dst: given bytes before its output, zstd decodes every block aside and
// copies it over (they must not serve as the frame's history), and a chunk
// of the fast coders is dozens of frames — 6% of a restore's CPU went to
// that copy. Room for exactly the chunk: a chunk that decodes longer
// than recorded fails when it runs out of room.
func (d *Decoder) decodeFrames(dst, stored []byte, rawLen int) ([]byte, error) {
	start := len(dst)
	end := start + rawLen
	full := slices.Grow(dst, rawLen)[:end]
	n := start
	for len(stored) > 0 {
		size, _, err := walkFrame(stored)
		if err != nil {
			return nil, err
		}
		out, err := d.zdec.DecodeAll(stored[:size], full[n:n:end])
		if err != nil {
			return nil, err
		}
		// The decoder never grows past the room it is given (CapLimit), so
		// out is full[n:]; checked rather than assumed.
		if len(out) > 0 && &out[0] != &full[n] {
			return nil, errors.New("zstd decoded outside the room given")
		}
		n += len(out)
		stored = stored[size:]
	}
	return full[:n], nil
}

// Inflate decompresses a whole zstd stream held in memory (a manifest, an
// index), refusing more than limit bytes and more than 1,024 times b's size
// (plus 1 MiB): a few kilobytes of zstd RLE blocks inflate to gigabytes,
// and whoever may write those objects must not make a run run out of
// memory. Real catalogs compress 5 to 100 times. A frame that declares a
// larger size is refused before anything is decoded.
func Inflate(b []byte, limit uint64) ([]byte, error) {
	const maxRatio, slack = 1024, 1 << 20
	limit = min(limit, slack+maxRatio*uint64(len(b)))
	var h zstd.Header
	if err := h.Decode(b); err == nil && h.HasFCS && h.FrameContentSize > limit {
		return nil, fmt.Errorf("decompresses to %d bytes, more than %d (%d stored): refused as a decompression bomb", h.FrameContentSize, limit, len(b))
	}
	// The reader's output is bounded below; its window is bounded here (s3bak
	// writes these objects with windows of at most 8 MiB).
	zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderMaxWindow(8<<20),
		zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("not a zstd stream: %w", err)
	}
	if uint64(len(raw)) > limit {
		return nil, fmt.Errorf("decompresses to more than %d bytes (%d stored): refused as a decompression bomb", limit, len(b))
	}
	return raw, nil
}
