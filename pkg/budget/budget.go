// Package budget bounds the bytes a run holds in buffers at once, across
// every file and worker, so memory stays flat whatever the file sizes and
// counts.
//
// The rule that keeps it free of deadlock: a request never waits for bytes
// that nobody will give back. A request larger than what can ever be free
// is cut to that (it then runs alone), and a component that holds memory
// for a whole run (a packer) carves it out first, so that later requests
// are cut to what is left rather than waiting for the carved bytes.
package budget

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Budget is a weighted semaphore over bytes that remembers its high-water
// mark, so tests can prove the bound by counting instead of timing.
type Budget struct {
	size int64
	sem  *semaphore.Weighted

	mu          sync.Mutex
	carved      int64 // held for long by Carve: never free for Acquire
	inUse, peak int64
}

// New returns a budget of size bytes; size <= 0 means unbounded.
func New(size int64) *Budget {
	b := &Budget{size: size}
	if size > 0 {
		b.sem = semaphore.NewWeighted(size)
	}
	return b
}

// Size is the bound in bytes, 0 when unbounded.
func (b *Budget) Size() int64 { return b.size }

// Available is the most one request can get: the bound less what is
// carved out. It is 0 when unbounded.
func (b *Budget) Available() int64 {
	if b.size <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size - b.carved
}

// Acquire blocks until n bytes are free and returns the function that gives
// them back. A request larger than Available is cut to Available, so it
// waits for everything else to finish instead of waiting forever; its
// caller should size its work to Available beforehand when it can.
func (b *Budget) Acquire(ctx context.Context, n int64) (release func(), err error) {
	n, err = b.take(ctx, n)
	if err != nil {
		return nil, err
	}
	return b.hold(n, false), nil
}

// take waits for n bytes, cut to Available (and a negative n to none), and
// returns how many it took.
func (b *Budget) take(ctx context.Context, n int64) (int64, error) {
	n = max(n, 0)
	if b.sem == nil {
		return n, nil
	}
	b.mu.Lock()
	n = min(n, b.size-b.carved)
	b.mu.Unlock()
	if err := b.sem.Acquire(ctx, n); err != nil {
		return 0, err
	}
	return n, nil
}

// AcquireSplit is Acquire of a+c bytes that are given back in two parts:
// a by releaseA, the rest by releaseC. It is for work that needs all of
// it to start and is done with a part sooner (a fetched chunk's stored
// bytes, once decoded). A request cut to Available is cut from c's part.
func (b *Budget) AcquireSplit(ctx context.Context, a, c int64) (releaseA, releaseC func(), err error) {
	releaseA, held, err := b.AcquireHeld(ctx, a, c)
	if err != nil {
		return nil, nil, err
	}
	return releaseA, held.Release, nil
}

// AcquireHeld is AcquireSplit whose second part is a Held, given back a
// piece at a time: for work that holds many buffers and lets them go one
// by one as it winds down (a stream's parts, once its last chunk is
// encoded), so that whoever waits next starts before the last of them is
// done.
func (b *Budget) AcquireHeld(ctx context.Context, a, c int64) (releaseA func(), held *Held, err error) {
	a, c = max(a, 0), max(c, 0)
	n, err := b.take(ctx, a+c)
	if err != nil {
		return nil, nil, err
	}
	a = min(a, n)
	b.count(n - a)
	return b.hold(a, false), &Held{b: b, n: n - a}, nil
}

// Held is bytes of a Budget given back in pieces.
type Held struct {
	b  *Budget
	mu sync.Mutex
	n  int64
}

// Grow waits for n bytes more, cut like Acquire's (to Available), and holds
// them too.
func (h *Held) Grow(ctx context.Context, n int64) error {
	n, err := h.b.take(ctx, n)
	if err != nil {
		return err
	}
	h.b.count(n)
	h.mu.Lock()
	h.n += n
	h.mu.Unlock()
	return nil
}

// Give gives back n of the bytes still held (all of them if fewer).
func (h *Held) Give(n int64) {
	h.mu.Lock()
	n = min(max(n, 0), h.n)
	h.n -= n
	h.mu.Unlock()
	if n > 0 {
		h.b.put(n, false)
	}
}

// Release gives back every byte still held.
func (h *Held) Release() { h.Give(1<<63 - 1) }

// ErrTooSmall is returned by Carve when the carving would leave less than
// it asks to keep free.
var ErrTooSmall = errors.New("budget too small to carve")

// Carve takes n bytes out of the budget for a component that holds them for
// a long time while others go on (a packer's packs, from the first small
// file to the end of the run). Later requests are cut to what is left, so
// they never wait for the carved bytes. Carve refuses (ErrTooSmall) when
// fewer than keep bytes would be left. On an unbounded budget it takes
// nothing.
func (b *Budget) Carve(ctx context.Context, n, keep int64) (release func(), err error) {
	if b.sem == nil {
		return func() {}, nil
	}
	b.mu.Lock()
	if n < 0 || b.size-b.carved-n < keep {
		b.mu.Unlock()
		return nil, ErrTooSmall
	}
	b.carved += n
	b.mu.Unlock()
	if err := b.sem.Acquire(ctx, n); err != nil {
		b.mu.Lock()
		b.carved -= n
		b.mu.Unlock()
		return nil, err
	}
	return b.hold(n, true), nil
}

// count counts n bytes taken as in use.
func (b *Budget) count(n int64) {
	b.mu.Lock()
	b.inUse += n
	b.peak = max(b.peak, b.inUse)
	b.mu.Unlock()
}

// put gives back n bytes counted in use (and carved, when they were).
func (b *Budget) put(n int64, carved bool) {
	b.mu.Lock()
	b.inUse -= n
	if carved {
		b.carved -= n
	}
	b.mu.Unlock()
	if b.sem != nil {
		b.sem.Release(n)
	}
}

func (b *Budget) hold(n int64, carved bool) func() {
	b.count(n)
	var once sync.Once
	return func() { once.Do(func() { b.put(n, carved) }) }
}

// Peak is the most bytes ever held at once.
func (b *Budget) Peak() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// InUse is the bytes held now.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inUse
}
