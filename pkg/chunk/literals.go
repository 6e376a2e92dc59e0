package chunk

import (
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Groups of small files and the entropy coding of their literals.
//
// The fast coder Huffman-codes a block's literals, then keeps the result
// only if it saves a sixteenth of them (zstd's rule): on data where it
// never does, every group pays for a table and a coding that are thrown
// away. On the bench's 10,000 small files that was 45% of coding a group
// and a tenth of the backup's CPU, for not one byte saved; on the small
// components of Cassandra's test sstables, and of the bench's default set,
// it saves 7% and 14% of the stored bytes, on every group.
//
// So the Encoder watches what the fast coder's groups come to. After a
// group whose literals stayed raw, the next groups skip the attempt (the
// fastRaw coder: the same bytes, without the Huffman pass), and the fast
// coder probes again after 1, 2, 4 … maxLiteralGap groups; a probe whose
// literals were coded brings every group back to it. What this can cost is
// the entropy coding of fewer than maxLiteralGap groups (4 MiB of raw
// small files) each time the data turns from literals that do not shrink
// to literals that do.

// maxLiteralGap bounds the groups coded without the attempt between two
// probes.
const maxLiteralGap = 32

// literalProbe is that watch, shared by the workers of one Encoder.
type literalProbe struct {
	mu   sync.Mutex
	wait int // groups left to code without the attempt
	gap  int // the wait after the next probe that finds literals raw
}

// probe tells whether the next group is coded by the fast coder, literals
// attempted: a probe, or every group while they pay.
func (p *literalProbe) probe() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wait > 0 {
		p.wait--
		return false
	}
	return true
}

// saw records what a probe's literals came to.
func (p *literalProbe) saw(coded bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if coded {
		p.gap, p.wait = 0, 0
		return
	}
	p.gap = min(max(2*p.gap, 1), maxLiteralGap)
	p.wait = p.gap
}

// literalsCoded reports whether the first block of the zstd frame at the
// start of b is a compressed block whose literals are Huffman-coded (RFC
// 8878, 3.1.1.2 and 3.1.1.3.1.1). A frame it cannot read counts as coded,
// which keeps the attempt.
func literalsCoded(b []byte) bool {
	var h zstd.Header
	if err := h.Decode(b); err != nil || h.Skippable {
		return true
	}
	const blockHeader = 3
	at := h.HeaderSize
	if len(b) <= at+blockHeader {
		return true
	}
	if blockType := b[at] >> 1 & 3; blockType != 2 {
		return false // a raw or RLE block: nothing was coded
	}
	litType := b[at+blockHeader] & 3
	return litType == 2 || litType == 3 // Compressed, Treeless
}
