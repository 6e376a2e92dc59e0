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
