package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
)

// kind is what a generated file looks like, which decides how well it
// compresses.
type kind int

const (
	kData     kind = iota // Data.db: LZ4-compressed rows, ~0.9 with zstd -3
	kIndex                // Index.db / Partitions.db: sorted keys and positions, ~0.15
	kSummary              // Summary.db: sampled keys, like the index
	kFilter               // Filter.db: a bloom filter, random bits
	kStats                // Statistics.db: histograms, mostly small numbers
	kCompInfo             // CompressionInfo.db: chunk offsets
	kDigest               // Digest.crc32: the Data.db's CRC32, in decimal
	kTOC                  // TOC.txt: the component list
	kMeta                 // manifest.json, schema.cql
)

// filler produces a file's bytes one unit at a time; the writer cuts the
// last unit at the file's size.
type filler interface {
	unit(dst []byte) []byte
}

func newFiller(k kind, r *rand.Rand) filler {
	switch k {
	case kData:
		return &dataFiller{r: r}
	case kIndex, kSummary:
		return &indexFiller{r: r, pos: uint64(r.IntN(1 << 20))}
	case kFilter:
		return randFiller{r: r}
	case kStats:
		return statsFiller{r: r}
	case kCompInfo:
		return &compInfoFiller{r: r}
	}
	panic(fmt.Sprintf("no filler for kind %d", k))
}

// dataFiller: 4 KiB blocks of random bytes that end in a repeated run, as
// an LZ4-compressed block leaves some redundancy that zstd finds.
type dataFiller struct {
	r *rand.Rand
}

func (f *dataFiller) unit(dst []byte) []byte {
	const block, random = 4096, 3680
	start := len(dst)
	dst = appendRandom(dst, f.r, random)
	pattern := [8]byte{'c', 'o', 'l', 0, byte(f.r.IntN(4)), 0, 0, 1}
	for len(dst)-start < block {
		dst = append(dst, pattern[:]...)
	}
	return dst
}

// indexFiller: entries of a partition index — a key from a small
// vocabulary and increasing positions, which zstd squeezes to ~0.15.
type indexFiller struct {
	r   *rand.Rand
	pos uint64
}

func (f *indexFiller) unit(dst []byte) []byte {
	key := fmt.Appendf(nil, "tenant-%02d:customer-%05d:orders", f.r.IntN(4), f.r.IntN(1000))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key)))
	dst = append(dst, key...)
	f.pos += 200 + uint64(f.r.IntN(32))*16
	dst = binary.BigEndian.AppendUint64(dst, f.pos)
	return binary.BigEndian.AppendUint32(dst, 0) // no promoted index
}

type randFiller struct{ r *rand.Rand }

func (f randFiller) unit(dst []byte) []byte { return appendRandom(dst, f.r, 4096) }

// statsFiller: histogram buckets, most of them empty.
type statsFiller struct{ r *rand.Rand }

func (f statsFiller) unit(dst []byte) []byte {
	for range 64 {
		var v uint64
		if f.r.IntN(5) == 0 {
			v = uint64(f.r.IntN(5000))
		}
		dst = binary.BigEndian.AppendUint64(dst, v)
	}
	return dst
}

// compInfoFiller: a header (compressor, chunk length, data length), then the offset of every 16 KiB chunk of the
// Data.db.
type compInfoFiller struct {
	r      *rand.Rand
	off    uint64
	header bool
}

func (f *compInfoFiller) unit(dst []byte) []byte {
	if !f.header {
		f.header = true
		dst = append(dst, "\x00\x0dLZ4Compressor\x00\x00\x00\x00\x00\x00\x40\x00\x7f\xff\xff\xff"...)
		dst = binary.BigEndian.AppendUint64(dst, uint64(f.r.Int64N(1<<34))) // uncompressed length
	}
	for range 64 {
		dst = binary.BigEndian.AppendUint64(dst, f.off)
		f.off += 9000 + uint64(f.r.IntN(4000))
	}
	return dst
}

func appendRandom(dst []byte, r *rand.Rand, n int) []byte {
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	p := dst[start:]
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, r.Uint64())
		p = p[8:]
	}
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return dst
}
