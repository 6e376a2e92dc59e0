// Package budget bounds the bytes a run holds in buffers at once, across
// every file and worker, so memory stays flat whatever the file sizes and
// counts.
package budget

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Budget is a weighted semaphore over bytes that remembers its high-water
// mark, so tests can prove the bound by counting instead of timing.
type Budget struct {
	size int64
	sem  *semaphore.Weighted

	mu          sync.Mutex
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

// Acquire blocks until n bytes are free and returns the function that gives
// them back. A request larger than the whole budget takes the whole budget,
// so it waits for everything else instead of waiting forever.
func (b *Budget) Acquire(ctx context.Context, n int64) (release func(), err error) {
	if n < 0 {
		n = 0
	}
	if b.size > 0 && n > b.size {
		n = b.size
	}
	if b.sem != nil {
		if err := b.sem.Acquire(ctx, n); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	b.inUse += n
	b.peak = max(b.peak, b.inUse)
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.inUse -= n
			b.mu.Unlock()
			if b.sem != nil {
				b.sem.Release(n)
			}
		})
	}, nil
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
