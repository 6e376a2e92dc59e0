package budget

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestBudgetBoundsBytesInFlight(t *testing.T) {
	b := New(100)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := b.Acquire(context.Background(), 30)
			if err != nil {
				t.Error(err)
				return
			}
			if n := b.InUse(); n > 100 {
				t.Errorf("in use %d > 100", n)
			}
			rel()
			rel() // releasing twice gives back once
		}()
	}
	wg.Wait()
	if b.Peak() > 100 || b.Peak() < 30 {
		t.Fatalf("peak %d, want 30..100", b.Peak())
	}
	if b.InUse() != 0 {
		t.Fatalf("in use %d after all released", b.InUse())
	}
}

func TestOversizedRequestTakesWholeBudget(t *testing.T) {
	b := New(10)
	rel, err := b.Acquire(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if b.InUse() != 10 {
		t.Fatalf("in use %d, want 10", b.InUse())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Acquire(ctx, 1); err == nil {
		t.Fatal("acquired beyond the budget")
	}
	rel()
}

func TestUnbounded(t *testing.T) {
	b := New(0)
	for range 3 {
		if _, err := b.Acquire(context.Background(), 1<<40); err != nil {
			t.Fatal(err)
		}
	}
	if b.Peak() != 3<<40 {
		t.Fatalf("peak %d", b.Peak())
	}
}

// The deadlock of issue #11: a packer held part of the budget for the
// whole run while a large file asked for the whole budget. Carving makes
// the large request fit in what is left.
func TestCarvedBytesAreNeverWaitedFor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := New(100)
	keepPacks, err := b.Carve(ctx, 30, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Available(); got != 70 {
		t.Fatalf("available %d, want 70", got)
	}
	rel, err := b.Acquire(ctx, 1000) // more than the whole budget
	if err != nil {
		t.Fatalf("an oversized request beside a carving must not wait forever: %v", err)
	}
	if b.InUse() != 100 {
		t.Fatalf("in use %d, want 100", b.InUse())
	}
	rel()
	keepPacks()
	if b.Available() != 100 || b.InUse() != 0 {
		t.Fatalf("after release: available %d, in use %d", b.Available(), b.InUse())
	}
}

func TestCarveRefusesToStarveOthers(t *testing.T) {
	b := New(100)
	if _, err := b.Carve(context.Background(), 60, 50); err != ErrTooSmall {
		t.Fatalf("carving 60 of 100 keeping 50: err %v, want ErrTooSmall", err)
	}
	if b.Available() != 100 {
		t.Fatalf("a refused carving took %d", 100-b.Available())
	}
	rel, err := New(0).Carve(context.Background(), 1<<40, 0)
	if err != nil {
		t.Fatal(err)
	}
	rel()
}

// A split acquisition gives its parts back one at a time, and a request
// cut to the budget is cut from its second part.
func TestAcquireSplitGivesBackInParts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		size, a, c        int64
		afterA, afterBoth int64 // in use once releaseA ran, and once both did
	}{
		{size: 100, a: 30, c: 50, afterA: 50, afterBoth: 0},
		{size: 100, a: 30, c: 90, afterA: 70, afterBoth: 0}, // cut to 100: c gets 70
		{size: 100, a: 130, c: 10, afterA: 0, afterBoth: 0}, // cut to 100: all of it a's
	} {
		b := New(tc.size)
		relA, relC, err := b.AcquireSplit(ctx, tc.a, tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.InUse(); got != min(tc.size, tc.a+tc.c) {
			t.Fatalf("%+v: in use %d after acquiring", tc, got)
		}
		relA()
		if got := b.InUse(); got != tc.afterA {
			t.Fatalf("%+v: in use %d after releasing a, want %d", tc, got, tc.afterA)
		}
		// What a gave back is free for others at once.
		if free := tc.size - tc.afterA; free > 0 {
			rel, err := b.Acquire(ctx, free)
			if err != nil {
				t.Fatal(err)
			}
			rel()
		}
		relC()
		relA() // twice gives back once
		if got := b.InUse(); got != tc.afterBoth {
			t.Fatalf("%+v: in use %d after releasing both", tc, got)
		}
	}
}

// TestHeldGrowsAndGivesBackInPieces: a Held's bytes come back a piece at a
// time, each free for others at once, never more than it holds; Grow waits
// for bytes that are not free and ends when its context does.
func TestHeldGrowsAndGivesBackInPieces(t *testing.T) {
	ctx := context.Background()
	b := New(100)
	relA, held, err := b.AcquireHeld(ctx, 20, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.InUse(); got != 70 {
		t.Fatalf("in use %d, want 70", got)
	}
	held.Give(10)
	relA()
	if got := b.InUse(); got != 40 {
		t.Fatalf("in use %d after giving back 10 and a's 20, want 40", got)
	}
	// 60 free: a Grow of 70 waits until 10 more come back.
	grown := make(chan error, 1)
	go func() { grown <- held.Grow(ctx, 70) }()
	select {
	case err := <-grown:
		t.Fatalf("Grow of 70 with 60 free returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	held.Give(10)
	if err := <-grown; err != nil {
		t.Fatal(err)
	}
	if got := b.InUse(); got != 100 || b.Peak() != 100 {
		t.Fatalf("in use %d, peak %d after growing, want 100", got, b.Peak())
	}
	held.Give(30)
	held.Release()
	held.Give(5) // nothing left: gives back nothing
	if got := b.InUse(); got != 0 {
		t.Fatalf("in use %d after release, want 0", got)
	}
	// A Grow that cannot be served ends with its context, holding nothing.
	rel, err := b.Acquire(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	_, held, err = b.AcquireHeld(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := held.Grow(cctx, 10); err == nil {
		t.Fatal("Grow with nothing free returned")
	}
	rel()
	held.Release()
	if got := b.InUse(); got != 0 {
		t.Fatalf("in use %d at the end, want 0", got)
	}
}
