package chunk

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Encoder compresses files chunk by chunk. It is safe for concurrent use:
// one Encoder serves every file of a backup, so its zstd state is shared.
type Encoder struct {
	opts Options
	zenc *zstd.Encoder // the configured level; EncodeAll is safe for concurrent use
	// fast and fastRaw code data that was compressed before (see choose),
	// at the fastest level, with and without entropy coding of literals.
	// They also compress the samples choose decides by.
	fast, fastRaw *zstd.Encoder
	bufs          sync.Pool
}

// NewEncoder returns an Encoder; Close releases its zstd state.
func NewEncoder(o Options) (*Encoder, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Encoder{opts: o}
	// A buffer holds a raw chunk or its stored form, which for a chunk
	// that does not compress is a little larger (block headers): sized
	// for that, append never grows a buffer of the pool by a quarter.
	bufCap := BufferSize(int64(o.ChunkSize))
	e.bufs.New = func() any { b := make([]byte, 0, bufCap); return &b }
	if o.Mode == None {
		return e, nil
	}
	// Every chunk is a frame of its own: a window past the chunk finds
	// nothing. Each of Workers encoders keeps twice its window of history,
	// so the window stops at 2 MiB: on the bench's Index.db a window of the
	// whole 8 MiB chunk found 0.2% more, for 12 MiB more in every encoder.
	// The fast coders code frames of one block (encodeAll): their window
	// is the block.
	window := windowFor(o.ChunkSize)
	fastWindow := min(window, fastFrame)
	for _, c := range []struct {
		z      **zstd.Encoder
		window int
		opts   []zstd.EOption
	}{
		{&e.zenc, min(window, maxWindow), []zstd.EOption{zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(o.Level))}},
		// The fastest level skips entropy coding of a block it finds no
		// matches in; LZ4 output has few, and literals that still shrink
		// by a third.
		{&e.fast, fastWindow, []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithAllLitEntropyCompression(true)}},
		{&e.fastRaw, fastWindow, []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithNoEntropyCompression(true)}},
	} {
		// The window before the level: set after it, the fastest level
		// keeps the blocks of 64 KiB it picks for its own window, and a
		// frame of fastFrame would be two blocks, the second coded with
		// the first as history.
		*c.z, err = zstd.NewWriter(nil, append(append([]zstd.EOption{zstd.WithWindowSize(c.window)}, c.opts...),
			zstd.WithEncoderConcurrency(o.Workers),
			// No frame checksum: the file's SHA-256 and each chunk's
			// CRC32C (checked when a file that failed its SHA-256 is read
			// again) cover its raw bytes already; an XXH64 of them too is
			// a pass more for the backup and for the restore.
			zstd.WithEncoderCRC(false))...)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
	}
	return e, nil
}

// maxWindow bounds the configured level's window (see NewEncoder).
const maxWindow = 2 << 20

// windowFor is the smallest zstd window (a power of two, at least zstd's
// minimum) that covers a chunk.
func windowFor(chunkSize int) int {
	w := zstd.MinWindowSize
	for w < chunkSize && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

// Options returns the options in force, defaults filled in.
func (e *Encoder) Options() Options { return e.opts }

// Close releases the zstd encoders.
func (e *Encoder) Close() {
	for _, z := range []*zstd.Encoder{e.zenc, e.fast, e.fastRaw} {
		if z != nil {
			z.Close()
		}
	}
}

// StoredMode is the Layout.Mode of objects this Encoder writes.
func (e *Encoder) StoredMode() Mode {
	if e.opts.Mode == None {
		return None
	}
	return Zstd
}

// encodeChunk returns the stored form of raw, appended to dst.
func (e *Encoder) encodeChunk(dst, raw []byte) (out []byte, compressed bool) {
	return e.encodeChunkAs(dst, raw, false)
}

// encodeChunkAs is encodeChunk of a chunk that is a group of small files
// or not (see EncodeGroup).
func (e *Encoder) encodeChunkAs(dst, raw []byte, group bool) (out []byte, compressed bool) {
	if e.opts.Mode == None {
		return append(dst, raw...), false
	}
	z := e.zenc
	switch {
	case e.opts.Mode == Auto && group && e.opts.Level <= fastMaxLevel:
		z = e.fast
	case e.opts.Mode == Auto:
		if z = e.choose(raw); z == nil {
			return appendRawFrame(dst, raw), false
		}
	}
	out = e.encodeAll(z, dst, raw)
	limit := rawFrameSize(len(raw))
	if e.opts.Mode == Auto {
		limit = min(limit, int(float64(len(raw))*e.opts.MaxRatio))
	}
	if len(out)-len(dst) >= limit {
		return appendRawFrame(out[:len(dst)], raw), false
	}
	return out, true
}

// fastFrame is the raw size of the frames the fast coders cut a chunk
// into: zstd's largest block, so that each frame is one block coded
// without history.
const fastFrame = 128 << 10

// encodeAll appends raw coded by z to dst. The fast coders code data that
// was compressed before, whose matches are short and near: a chunk is
// coded as frames of one block each rather than as one frame, which on the
// bench's Data.db codes 1.7 (literals raw) to 2.3 (entropy-coded) times
// as fast and stores 0.7% less. One frame of many blocks copies every
// block into the encoder's history, and moves the history down again
// each window — twice the chunk's bytes, a tenth of a large file's backup
// CPU (bench/README.md, "Compression"). The frames follow one another
// under the chunk's one entry of the seek table: a plain zstd stream, read
// as one by every decoder. Deeper levels keep one frame a chunk: on data
// that compresses well their matches reach back megabytes.
func (e *Encoder) encodeAll(z *zstd.Encoder, dst, raw []byte) []byte {
	if z != e.fast && z != e.fastRaw {
		return z.EncodeAll(raw, dst)
	}
	for off := 0; off < len(raw); off += fastFrame {
		dst = z.EncodeAll(raw[off:min(off+fastFrame, len(raw))], dst)
	}
	return dst
}

// Sampling: choose compresses samples of a chunk larger than
// samples*sampleSize, about 1.5% of a default chunk.
const (
	sampleSize = 32 << 10
	// minSample: a smaller chunk is sampled in smaller pieces, at least
	// this large (sampleSizeFor). At 32 KiB a side, sampling a 500 KiB
	// Data.db compressed a quarter of it once more, half for compressed
	// data: 7% of the bench default set's backup CPU.
	minSample = 4 << 10
	samples   = 4
	// fastRatio: a chunk whose samples the fastest level shrinks by less
	// than this (stored/raw above it) was compressed before.
	fastRatio = 0.6
	// fastMaxLevel: the fast coders stand in for levels up to zstd's
	// default; a higher --zstd-level asks for every byte, at any CPU.
	fastMaxLevel = 3
)

// choose picks the coder of one chunk in Auto mode from a few small
// samples compressed at the fastest level:
//   - samples that do not shrink below MaxRatio: nil, the chunk is
//     stored raw and costs almost no CPU;
//   - samples above fastRatio: data compressed before, as LZ4 SSTables
//     and Snappy HFile blocks are. Deeper match search finds a percent or
//     two more in it at two to four times the CPU (bench/README.md,
//     "Compression"), so the fastest level codes it, and entropy-codes its
//     literals only if that saves a percent in the samples: random
//     literals cost a histogram a block and gain nothing;
//   - else the configured level.
//
// A chunk no larger than the samples is coded at the configured level.
func (e *Encoder) choose(raw []byte) *zstd.Encoder {
	if len(raw) <= sampleSize*samples {
		return e.zenc
	}
	size := sampleSizeFor(len(raw))
	in := samples * size
	coded := e.sampled(e.fast, raw, size)
	if float64(coded) > float64(in)*e.opts.MaxRatio {
		return nil
	}
	if e.opts.Level > fastMaxLevel || float64(coded) <= float64(in)*fastRatio {
		return e.zenc
	}
	if plain := e.sampled(e.fastRaw, raw, size); plain <= coded+coded/100 {
		return e.fastRaw
	}
	return e.fast
}

// sampleSizeFor is the size of each of the samples of a chunk of n bytes:
// together 1/64 of it, from minSample to sampleSize a side.
func sampleSizeFor(n int) int { return min(max(n/(samples*64), minSample), sampleSize) }

// sampled is the size z codes samples of size bytes, evenly spread over
// raw, to.
func (e *Encoder) sampled(z *zstd.Encoder, raw []byte, size int) int {
	var out int
	buf := make([]byte, 0, size+64)
	step := (len(raw) - size) / (samples - 1)
	for i := range samples {
		buf = z.EncodeAll(raw[i*step:i*step+size], buf[:0])
		out += len(buf)
	}
	return out
}

// EncodeBytes encodes a whole small file held in memory, appending the
// stored object to dst. Small files are read once, hashed and encoded from
// the same buffer.
func (e *Encoder) EncodeBytes(dst, raw []byte) ([]byte, *Layout) {
	return e.encodeBytes(dst, raw, false)
}

// EncodeGroup is EncodeBytes of a group of small files, one chunk. In Auto
// mode, at a level no deeper than zstd's default, the fast coder codes it
// (with its literals entropy-coded): a node's small files are a sliver of
// its bytes and most of its files, so their cost is CPU per file, not
// bytes stored. The fastest level codes groups 1.3 to 1.6 times as fast as
// the default one, and stores 1.6% more of the bench's 10,000 small files,
// 4.5% more of the small components of Cassandra's test sstables
// (bench/README.md, "Groups of small files"): on a node whose small files
// are 1% of its bytes, 0.05%.
func (e *Encoder) EncodeGroup(dst, raw []byte) ([]byte, *Layout) {
	return e.encodeBytes(dst, raw, true)
}

func (e *Encoder) encodeBytes(dst, raw []byte, group bool) ([]byte, *Layout) {
	l := e.newLayout(int64(len(raw)))
	// Room for the largest stored form at once: grown as the blocks are
	// coded, the object was copied over and over (2% of the bench default
	// set's backup CPU, for its small files).
	n := NumChunks(int64(len(raw)), int64(e.opts.ChunkSize))
	dst = slices.Grow(dst, rawFrameSize(len(raw))+n*rawFrameSize(0)+int(SeekTableSize(n)))
	start := len(dst)
	for off := 0; off < len(raw); off += e.opts.ChunkSize {
		p := raw[off:min(off+e.opts.ChunkSize, len(raw))]
		before := len(dst)
		var compressed bool
		dst, compressed = e.encodeChunkAs(dst, p, group)
		l.add(int64(len(p)), int64(len(dst)-before), compressed, CRC32C(p))
	}
	dst = e.finish(dst, l)
	l.StoredSize = int64(len(dst) - start)
	return dst, l
}

func (e *Encoder) newLayout(size int64) *Layout {
	return &Layout{
		Mode: e.StoredMode(), ChunkSize: int64(e.opts.ChunkSize), RawSize: size,
		Chunks: make([]Chunk, 0, NumChunks(size, int64(e.opts.ChunkSize))),
	}
}

func (l *Layout) add(rawLen, storedLen int64, compressed bool, crc uint32) {
	c := Chunk{RawLen: rawLen, StoredLen: storedLen, Compressed: compressed, CRC32C: crc}
	if n := len(l.Chunks); n > 0 {
		last := l.Chunks[n-1]
		c.RawOff = last.RawOff + last.RawLen
		c.StoredOff = last.StoredOff + last.StoredLen
	}
	l.Chunks = append(l.Chunks, c)
}

// finish appends the seek table; an empty file stays an empty object, which
// every zstd decoder reads as empty.
func (e *Encoder) finish(dst []byte, l *Layout) []byte {
	if l.Mode == None || len(l.Chunks) == 0 {
		return dst
	}
	return appendSeekTable(dst, l.Chunks)
}

// ErrChanged means a file's bytes differ between two reads of it.
var ErrChanged = errors.New("file changed while it was being read")

type encoded struct {
	buf        *[]byte
	raw        *[]byte // when the writer hashes
	rawLen     int64
	compressed bool
	crc        uint32
	err        error
}

// StreamMemoryN bounds the chunk buffers one EncodeFrom with workers
// chunks in flight holds: a raw and a stored buffer for each chunk being
// compressed and the one being written. A chunk more read ahead bought no
// speed when compressing is the bottleneck (a queue of workers+2 chunks
// made the bench's 1.4 GiB file no faster than workers+1, on 2 CPUs), and
// is memory a stream's parts in flight lack when the network is.
func (e *Encoder) StreamMemoryN(workers int) int64 {
	return e.StreamMemory(workers, -1)
}

// StreamMemory is StreamMemoryN for a file of size bytes (-1: any): no
// more chunks are in flight than the file has.
func (e *Encoder) StreamMemory(workers int, size int64) int64 {
	n := int64(max(workers, 1) + 1)
	if size >= 0 {
		n = min(n, int64(max(NumChunks(size, int64(e.opts.ChunkSize)), 1)))
	}
	return 2 * n * int64(e.opts.ChunkSize)
}

// Stream is one object for EncodeFrom to write.
type Stream struct {
	R    io.ReaderAt
	Size int64
	// Want, when not nil, holds the CRC32C of each chunk from an earlier
	// read, and a difference fails with ErrChanged rather than storing
	// bytes that do not match the checksum.
	Want []uint32
	// Workers is how many chunks are compressed at once (at least one).
	Workers int
	// Prior are the chunks stored already, of an upload cut short (none
	// for a new object).
	Prior []Chunk
	// Hash, when set, is written the raw bytes of every chunk after Prior,
	// in order: a content hash of the same read that compresses the file.
	// The caller hashes Prior's bytes first.
	Hash hash.Hash
	// Chunk, when set, is told each chunk after Prior right before its
	// Write, so that w knows what the bytes it is given hold.
	Chunk func(Chunk)
}

// EncodeFrom reads s.Size bytes of s.R, chunk by chunk, compresses up to
// s.Workers chunks at once and writes the stored object to w in order.
// Memory is StreamMemory(s.Workers, s.Size), never more than
// StreamMemoryN(s.Workers) whatever the file size, so that a caller with
// little memory can still stream a large file: in smaller steps, not all
// at once.
//
// It continues an object of which the chunks s.Prior are stored already:
// it writes to w only the chunks after them and the seek table, which
// covers all of them. Each chunk is one Write, and the seek table one last
// Write, so that w can cut parts at chunk boundaries. The Layout returned
// describes the whole object.
func (e *Encoder) EncodeFrom(ctx context.Context, w io.Writer, s Stream) (*Layout, error) {
	l := e.newLayout(s.Size)
	n := NumChunks(s.Size, int64(e.opts.ChunkSize))
	if s.Want != nil && len(s.Want) != n {
		return nil, fmt.Errorf("chunk: %d checksums for %d chunks", len(s.Want), n)
	}
	if len(s.Prior) > n {
		return nil, fmt.Errorf("chunk: %d chunks stored of an object of %d", len(s.Prior), n)
	}
	var stored int64
	for i, c := range s.Prior {
		if s.Want != nil && s.Want[i] != c.CRC32C {
			return nil, fmt.Errorf("chunk %d: %w", i, ErrChanged)
		}
		rawLen := min(int64(e.opts.ChunkSize), s.Size-int64(i)*int64(e.opts.ChunkSize))
		l.add(rawLen, c.StoredLen, c.Compressed, c.CRC32C)
		stored += c.StoredLen
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan chan encoded, max(s.Workers-1, 0))
	go e.dispatch(ctx, queue, s.R, s.Size, len(s.Prior), n, s.Hash != nil)
	defer func() { // stop dispatching, then drain so every buffer returns to the pool
		cancel()
		for ch := range queue {
			e.release(<-ch)
		}
	}()
	for i := len(s.Prior); i < n; i++ {
		ch, ok := <-queue
		if !ok {
			// dispatch stopped early: ctx ended. (A receive from the nil
			// channel a closed queue yields would block for ever.)
			return nil, ctx.Err()
		}
		res := <-ch
		if res.err != nil {
			return nil, res.err
		}
		if s.Want != nil && s.Want[i] != res.crc {
			e.release(res)
			return nil, fmt.Errorf("chunk %d: %w", i, ErrChanged)
		}
		if s.Hash != nil {
			s.Hash.Write(*res.raw)
		}
		l.add(res.rawLen, int64(len(*res.buf)), res.compressed, res.crc)
		if s.Chunk != nil {
			s.Chunk(l.Chunks[len(l.Chunks)-1])
		}
		stored += int64(len(*res.buf))
		if err := e.write(w, &res); err != nil {
			return nil, err
		}
	}
	tail := e.finish(nil, l)
	if _, err := w.Write(tail); err != nil {
		return nil, err
	}
	l.StoredSize = stored + int64(len(tail))
	return l, nil
}

// A Keeper is a writer that may keep the buffer of a chunk rather than
// copy it: a chunk that barely compresses fills most of its buffer, and
// copying it was a pass over memory neither side had in cache, 0.27 CPU-s
// per GiB of a large Data.db (7% of its backup's CPU). KeepWrite writes b
// and tells whether it kept it; a kept b stays untouched until the Keeper
// calls done, which returns it to the Encoder.
type Keeper interface {
	KeepWrite(b []byte, done func()) (kept bool, err error)
}

// write writes res's stored chunk to w, handing its buffer over to a
// Keeper, and returns res's buffers to the pool (those w did not keep).
func (e *Encoder) write(w io.Writer, res *encoded) error {
	var err error
	if k, ok := w.(Keeper); ok {
		buf := res.buf
		var kept bool
		kept, err = k.KeepWrite(*buf, func() { e.bufs.Put(buf) })
		if kept {
			res.buf = nil
		}
	} else {
		_, err = w.Write(*res.buf)
	}
	e.release(*res)
	return err
}

// release returns res's buffers to the pool.
func (e *Encoder) release(res encoded) {
	for _, b := range []*[]byte{res.buf, res.raw} {
		if b != nil {
			e.bufs.Put(b)
		}
	}
}

// dispatch starts one goroutine per chunk, at most cap(queue)+1 ahead of the
// writer (workers in all, and the one it writes), and closes queue when
// every chunk is started or ctx ends.
func (e *Encoder) dispatch(ctx context.Context, queue chan<- chan encoded, r io.ReaderAt, size int64, from, n int, keepRaw bool) {
	defer close(queue)
	for i := from; i < n; i++ {
		ch := make(chan encoded, 1)
		select {
		case queue <- ch:
		case <-ctx.Done():
			return
		}
		off := int64(i) * int64(e.opts.ChunkSize)
		go func() { ch <- e.readAndEncode(r, off, min(int64(e.opts.ChunkSize), size-off), keepRaw) }()
	}
}

// readAndEncode reads and compresses one chunk; keepRaw hands its raw
// bytes on too, for the writer to hash in order (StreamMemoryN counts a
// raw buffer per chunk in flight either way).
func (e *Encoder) readAndEncode(r io.ReaderAt, off, n int64, keepRaw bool) encoded {
	raw := e.bufs.Get().(*[]byte)
	if !keepRaw {
		defer e.bufs.Put(raw)
	}
	*raw = (*raw)[:n]
	// io.ReaderAt may return io.EOF with a full read at the end of the file.
	if got, err := r.ReadAt(*raw, off); err != nil && !(errors.Is(err, io.EOF) && got == len(*raw)) {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("file is shorter than %d bytes (offset %d): %w", off+n, off, io.ErrUnexpectedEOF)
		}
		if keepRaw {
			e.bufs.Put(raw)
		}
		return encoded{err: err}
	}
	out := e.bufs.Get().(*[]byte)
	var compressed bool
	*out, compressed = e.encodeChunk((*out)[:0], *raw)
	res := encoded{buf: out, rawLen: n, compressed: compressed, crc: CRC32C(*raw)}
	if keepRaw {
		res.raw = raw
	}
	return res
}
