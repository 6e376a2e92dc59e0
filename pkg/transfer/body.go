package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Body is what UploadPart and Upload send: pieces one after the other, so that a
// part gathered from several buffers (a large file's chunks, each coded
// in a buffer of its own) is sent as it is, not copied into one buffer
// first. Summed says CRC32C is the pieces' checksum, computed by the
// caller as it gathered them, while they were fresh in the CPU's caches;
// otherwise UploadPart and Upload compute it when the client sends
// checksums.
type Body struct {
	Pieces [][]byte
	CRC32C uint32
	Summed bool
}

// Bytes is the Body of one buffer.
func Bytes(b []byte) Body { return Body{Pieces: [][]byte{b}} }

// Len is the body's size in bytes.
func (b Body) Len() int64 {
	var n int64
	for _, p := range b.Pieces {
		n += int64(len(p))
	}
	return n
}

// sum is the body's CRC32C.
func (b Body) sum() uint32 {
	if b.Summed {
		return b.CRC32C
	}
	var crc uint32
	for _, p := range b.Pieces {
		crc = crc32.Update(crc, castagnoli, p)
	}
	return crc
}

// reader reads the body, and rewinds for a retry.
func (b Body) reader() io.ReadSeeker {
	if len(b.Pieces) == 1 {
		return bytes.NewReader(b.Pieces[0])
	}
	return &piecesReader{pieces: b.Pieces, size: b.Len()}
}

// piecesReader is an io.ReadSeeker over pieces read one after the other.
type piecesReader struct {
	pieces    [][]byte
	size, off int64
	i, in     int // the piece off is in, and off's place in it
}

func (r *piecesReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.i < len(r.pieces) {
		k := copy(p[n:], r.pieces[r.i][r.in:])
		n += k
		r.in += k
		r.off += int64(k)
		if r.in == len(r.pieces[r.i]) {
			r.i, r.in = r.i+1, 0
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (r *piecesReader) Seek(offset int64, whence int) (int64, error) {
	abs := offset
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		abs += r.off
	case io.SeekEnd:
		abs += r.size
	default:
		return 0, fmt.Errorf("seek: whence %d", whence)
	}
	if abs < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.off, r.i, r.in = abs, 0, 0
	for rest := abs; r.i < len(r.pieces); r.i++ {
		if rest < int64(len(r.pieces[r.i])) {
			r.in = int(rest)
			break
		}
		rest -= int64(len(r.pieces[r.i]))
	}
	return abs, nil
}
