package backup

import (
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Stream is the shape of a large file's compress-and-upload stream: the
// chunk size, the multipart part size and the parts in flight.
type Stream struct {
	ChunkSize   int64
	PartSize    int64
	Concurrency int // parts uploaded at once per file
}

// minStreamChunk is the smallest chunk StreamShape makes: below it the
// per-chunk overhead (a frame, a seek-table entry, a CRC) starts to show.
const minStreamChunk = 1 << 20

// StreamShape fits s to a memory budget of budget bytes (0: unbounded), so
// that a large file's stream at one compressing worker fits in the three
// quarters of the budget left beside the packs: first smaller parts (down
// to what the largest file needs for S3's 10,000 parts), then fewer parts
// in flight, down to one, then — unless the chunk size was chosen by the
// user (fixedChunk) — smaller chunks, down to 1 MiB. A stream that still
// does not fit runs alone and exceeds the budget by at most the
// difference: S3's 5 MiB minimum part, twice, is the floor.
//
// Smaller chunks name different objects (the chunk size is part of a
// compressed object's key), so a node whose --max-memory changes stores
// its large files once more; that is the price of a small budget.
func StreamShape(budget int64, s Stream, largest int64, fixedChunk bool) Stream {
	s.PartSize = transfer.PartSizeFor(largest, s.PartSize)
	s.Concurrency = max(s.Concurrency, 1)
	if budget <= 0 {
		return s
	}
	room := budget / 4 * 3
	floor := transfer.PartSizeFor(largest, transfer.MinPartSize)
	// One worker's chunks: the one being compressed and the one being
	// written, a raw and a stored buffer each (chunk.StreamMemoryN(1)).
	need := func() int64 { return 4*s.ChunkSize + int64(s.Concurrency+1)*PartBuffer(s.PartSize, s.ChunkSize) }
	for need() > room && s.PartSize > floor {
		s.PartSize = max(s.PartSize/2, floor)
	}
	for need() > room && s.Concurrency > 1 {
		s.Concurrency--
	}
	for need() > room && !fixedChunk && s.ChunkSize/2 >= minStreamChunk {
		s.ChunkSize /= 2
	}
	return s
}

// PartBuffer is the memory of one part of a large file's stream. A part
// holds whole chunks (their stored form, a little more than their raw
// bytes when they do not compress): as many as fit in partSize, or one
// chunk larger than that; chunks that barely compress are sent from the
// encoder's buffers (chunk.Keeper), so a part holds room for as many
// whole buffers as partSize has chunks. A part that must grow past it to
// reach S3's 5 MiB minimum (compressed chunks, then one that does not
// compress) is rare, and is held within the stream's memory by waiting
// for stored parts (see partWriter).
func PartBuffer(partSize, chunkSize int64) int64 {
	return max(partSize, max(partSize/chunkSize, 1)*chunk.BufferSize(chunkSize))
}
