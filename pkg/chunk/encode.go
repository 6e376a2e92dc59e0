package chunk

import (
	"fmt"
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
	literals      literalProbe // groups: whether the fast coder's literal coding pays
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

// coded is what coding a chunk tells besides its stored bytes.
type coded struct {
	compressed bool
	// rawCRC and storedCRC are the CRC32Cs of the raw chunk (the layout's) and
	// of its stored form (what S3 checks of the upload that carries it),
	// summed as the chunk is coded: afterwards, each was one more pass
	// over memory no cache held any more.
	rawCRC, storedCRC uint32
}

// encodeChunk returns the stored form of raw, appended to dst.
func (e *Encoder) encodeChunk(dst, raw []byte) ([]byte, coded) {
	return e.encodeChunkAs(dst, raw, false)
}

// encodeChunkAs is encodeChunk of a chunk that is a group of small files
// or not (see EncodeGroup).
func (e *Encoder) encodeChunkAs(dst, raw []byte, group bool) ([]byte, coded) {
	if e.opts.Mode == None {
		crc := CRC32C(raw)
		return append(dst, raw...), coded{rawCRC: crc, storedCRC: crc}
	}
	z, probe := e.zenc, false
	switch {
	case e.opts.Mode == Auto && group && e.opts.Level <= fastMaxLevel:
		// The fast coder, literals entropy-coded where that pays (see
		// literalProbe).
		if z, probe = e.fastRaw, e.literals.probe(); probe {
			z = e.fast
		}
	case e.opts.Mode == Auto:
		if z = e.choose(raw); z == nil {
			return appendRawFrame(dst, raw)
		}
	}
	out, c := e.encodeAll(z, dst, raw)
	if probe {
		e.literals.saw(literalsCoded(out[len(dst):]))
	}
	limit := rawFrameSize(len(raw))
	if e.opts.Mode == Auto {
		limit = min(limit, int(float64(len(raw))*e.opts.MaxRatio))
	}
	if len(out)-len(dst) >= limit {
		return appendRawFrame(out[:len(dst)], raw)
	}
	c.compressed = true
	return out, c
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
//
// Each frame is summed raw right before the coder reads it and stored
// right after it is written, while both are in the cache.
func (e *Encoder) encodeAll(z *zstd.Encoder, dst, raw []byte) ([]byte, coded) {
	var c coded
	if z != e.fast && z != e.fastRaw {
		c.rawCRC = CRC32C(raw)
		start := len(dst)
		dst = z.EncodeAll(raw, dst)
		c.storedCRC = CRC32C(dst[start:])
		return dst, c
	}
	for off := 0; off < len(raw); off += fastFrame {
		p := raw[off:min(off+fastFrame, len(raw))]
		c.rawCRC = UpdateCRC32C(c.rawCRC, p)
		start := len(dst)
		dst = z.EncodeAll(p, dst)
		c.storedCRC = UpdateCRC32C(c.storedCRC, dst[start:])
	}
	return dst, c
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
// (with its literals entropy-coded where that pays, see literalProbe): a
// node's small files are a sliver of its bytes and most of its files, so
// their cost is CPU per file, not bytes stored. The fastest level codes
// groups 1.3 to 1.6 times as fast as the default one, and stores 1.6% more
// of the bench's 10,000 small files, 4.5% more of the small components of
// Cassandra's test sstables (bench/README.md, "Groups of small files"): on
// a node whose small files are 1% of its bytes, 0.05%.
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
		var c coded
		dst, c = e.encodeChunkAs(dst, p, group)
		l.add(int64(len(p)), int64(len(dst)-before), c)
		l.StoredCRC32C = CombineCRC32C(l.StoredCRC32C, c.storedCRC, int64(len(dst)-before))
	}
	tail := len(dst)
	dst = e.finish(dst, l)
	l.StoredCRC32C = UpdateCRC32C(l.StoredCRC32C, dst[tail:])
	l.StoredSize = int64(len(dst) - start)
	return dst, l
}

func (e *Encoder) newLayout(size int64) *Layout {
	return &Layout{
		Mode: e.StoredMode(), ChunkSize: int64(e.opts.ChunkSize), RawSize: size,
		Chunks: make([]Chunk, 0, NumChunks(size, int64(e.opts.ChunkSize))),
	}
}

func (l *Layout) add(rawLen, storedLen int64, cc coded) {
	c := Chunk{RawLen: rawLen, StoredLen: storedLen, Compressed: cc.compressed, CRC32C: cc.rawCRC, StoredCRC32C: cc.storedCRC}
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
