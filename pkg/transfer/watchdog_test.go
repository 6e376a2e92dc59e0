package transfer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stallingServer answers S3 requests by sending half an answer (or none)
// and then saying nothing more until the test ends: a half-open connection
// or a stopped server, as the client sees it.
func stallingServer(t *testing.T, headersOnly bool) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var seen atomic.Int32
	done := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		if !headersOnly {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(make([]byte, 500))
			w.(http.Flusher).Flush()
		}
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); s.Close() })
	return s, &seen
}

func stallClient(t *testing.T, endpoint string) *Client {
	t.Helper()
	c, err := New(context.Background(), Options{Bucket: "stall", EndpointURL: endpoint, IOTimeout: 300 * time.Millisecond, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStalledBodyIsGivenUp: a GET whose body stops half-way on an open
// connection hung restore for 600 s and more. With the I/O timeout the
// read fails with a StallError that names the request and the phase.
func TestStalledBodyIsGivenUp(t *testing.T) {
	s, _ := stallingServer(t, false)
	c := stallClient(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body, err := c.Get(ctx, "k", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	start := time.Now()
	_, err = io.ReadAll(body)
	var se *StallError
	if !errors.As(err, &se) {
		t.Fatalf("read of a stalled body: %v, want a StallError", err)
	}
	if se.Phase != "reading the answer" || !strings.Contains(se.Error(), "/stall/k") {
		t.Fatalf("stall error %q does not say what stalled", se)
	}
	if ctx.Err() != nil {
		t.Fatalf("gave up only after %s", time.Since(start))
	}
}

// TestSilentServerIsRetriedThenGivenUp: a server that never answers costs
// each attempt the I/O timeout, the SDK retries it, and the error names
// the stall rather than a cancelled context.
func TestSilentServerIsRetriedThenGivenUp(t *testing.T) {
	s, seen := stallingServer(t, true)
	c := stallClient(t, s.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Head(ctx, "k")
	var se *StallError
	if !errors.As(err, &se) {
		t.Fatalf("HEAD against a silent server: %v, want a StallError", err)
	}
	if se.Phase != "waiting for the answer" {
		t.Fatalf("phase %q", se.Phase)
	}
	if n := seen.Load(); n != 2 {
		t.Fatalf("the server saw %d attempts, want 2 (the stall is retried)", n)
	}
}

// TestSlowButMovingTransferIsNotAStall: a body that trickles in, each
// byte within the timeout, is read whole although it takes longer than
// the timeout in all.
func TestSlowButMovingTransferIsNotAStall(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusOK)
		for range 10 {
			_, _ = w.Write([]byte{'x'})
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	defer s.Close()
	c := stallClient(t, s.URL)
	body, err := c.Get(context.Background(), "k", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil || len(b) != 10 {
		t.Fatalf("got %d bytes, %v", len(b), err)
	}
}
