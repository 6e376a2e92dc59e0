package backup

import (
	"context"
	"sync"
)

// onceMap runs fn once per key at a time; callers of a key in progress
// wait for its result (or their context).
type onceMap[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*onceResult[V]
	// forget drops a key once done: the map then holds what is in flight,
	// not every key of the run, and a later caller runs fn again.
	forget bool
}

type onceResult[V any] struct {
	done chan struct{}
	v    V
	err  error
}

func (o *onceMap[K, V]) do(ctx context.Context, k K, fn func() (V, error)) (v V, first bool, err error) {
	o.mu.Lock()
	if o.m == nil {
		o.m = map[K]*onceResult[V]{}
	}
	r, ok := o.m[k]
	if !ok {
		r = &onceResult[V]{done: make(chan struct{})}
		o.m[k] = r
	}
	o.mu.Unlock()
	if !ok {
		r.v, r.err = fn()
		close(r.done)
		if o.forget {
			o.mu.Lock()
			delete(o.m, k)
			o.mu.Unlock()
		}
		return r.v, true, r.err
	}
	select {
	case <-r.done:
		return r.v, false, r.err
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
}

// sizeGate lets one file of a size at a time be stored in one pass:
// another file of that size may hold the same bytes, and waits to be
// hashed and compared with it.
type sizeGate struct {
	mu sync.Mutex
	m  map[int64]chan struct{} // in flight: at most Concurrency entries
}

// claim reports first when no file of size is in flight, and then done
// must be called when it is stored; otherwise it waits for that file.
func (g *sizeGate) claim(ctx context.Context, size int64) (done func(), first bool, err error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[int64]chan struct{}{}
	}
	ch, busy := g.m[size]
	if !busy {
		ch = make(chan struct{})
		g.m[size] = ch
	}
	g.mu.Unlock()
	if busy {
		select {
		case <-ch:
			return nil, false, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	return func() {
		g.mu.Lock()
		delete(g.m, size)
		g.mu.Unlock()
		close(ch)
	}, true, nil
}
