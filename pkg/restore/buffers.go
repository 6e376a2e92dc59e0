package restore

import (
	"sync"
	"unsafe"
)

// align is the memory and file-offset alignment of O_DIRECT writes; a page
// covers every logical block size in use.
const align = 4096

// minPooled is the smallest buffer worth keeping: smaller ones are cheap
// to allocate, and would crowd the pool.
const minPooled = 64 << 10

// buffers keeps the chunk buffers of one restore for reuse, up to max bytes.
// A restore moves gigabytes through buffers of a few sizes; a buffer taken
// fresh from the kernel costs a page fault and a zeroed page per 4 KiB,
// which on a busy machine is as much CPU as decoding it. A sync.Pool would
// hand them to the garbage collector at every cycle. Every buffer starts
// on an align boundary, so that it can be written with O_DIRECT.
type buffers struct {
	mu   sync.Mutex
	free []*[]byte
	kept int64
	max  int64
}

func newBuffers(max int64) *buffers { return &buffers{max: max} }

// classSize is the granularity of the capacity of large buffers. A
// restore's large buffers come in a few sizes that differ by a little — a
// chunk's decoded bytes, the same as raw blocks, a run of a pack of about
// the pack size — and one that is a few bytes too small for the next
// request is a buffer allocated anew, and one dropped. 256 KiB is 3% of a
// chunk of 8 MiB; classes of 1 MiB (12%) made no fewer buffers anew and
// held more.
const classSize = 256 << 10

// capacity is the capacity of a new buffer of length n. It leaves room
// for a raw zstd frame's 3 bytes per 128 KiB, so that stored and raw
// buffers of one chunk size serve each other, and from classSize up is
// rounded to a multiple of it.
func capacity(n int64) int64 {
	c := n + n/1024 + 64
	if c >= classSize {
		c = (c + classSize - 1) / classSize * classSize
	}
	return c
}

// get returns a buffer of length n: the smallest idle one large enough, or
// a new one (see capacity).
func (b *buffers) get(n int64) *[]byte {
	b.mu.Lock()
	best := -1
	for i, f := range b.free {
		if c := int64(cap(*f)); c >= n && (best < 0 || c < int64(cap(*b.free[best]))) {
			best = i
		}
	}
	if best >= 0 {
		f := b.free[best]
		b.free[best] = b.free[len(b.free)-1]
		b.free = b.free[:len(b.free)-1]
		b.kept -= int64(cap(*f))
		b.mu.Unlock()
		*f = (*f)[:n]
		return f
	}
	b.mu.Unlock()
	buf := alignedBytes(int(n), int(capacity(n)))
	return &buf
}

// put gives a buffer back; beyond max idle bytes it is left to the garbage
// collector.
func (b *buffers) put(buf *[]byte) {
	c := int64(cap(*buf))
	if c < minPooled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kept+c > b.max {
		return
	}
	b.free = append(b.free, buf)
	b.kept += c
}

// alignedBytes returns a slice of length n and capacity c whose first byte
// sits on an align boundary.
func alignedBytes(n, c int) []byte {
	raw := make([]byte, c+align)
	skip := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (align - 1))
	return raw[skip : skip+n : skip+c]
}

// isAligned reports whether p starts on an align boundary.
func isAligned(p []byte) bool {
	return len(p) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(p)))&(align-1) == 0
}
