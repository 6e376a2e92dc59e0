package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// proxied starts an httptest server and a netProxy in front of it.
func proxied(t *testing.T, h http.Handler, latency time.Duration, bandwidth int64) (*netProxy, *http.Client) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p, err := startNetProxy(strings.TrimPrefix(srv.URL, "http://"), latency, bandwidth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	return p, &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get fetches url within ctx and returns the body and how long it took.
func get(ctx context.Context, t *testing.T, c *http.Client, url string) ([]byte, time.Duration) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	return body, time.Since(start)
}

func TestNetProxyDelaysEveryRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const latency = 60 * time.Millisecond
	p, c := proxied(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "pong")
	}), latency, 0)
	// The first request opens the connection; the next two reuse it, and
	// each must pay the latency again.
	for i := range 3 {
		body, took := get(ctx, t, c, p.URL+"/ping")
		if string(body) != "pong" {
			t.Fatalf("request %d: body %q", i, body)
		}
		if took < latency {
			t.Errorf("request %d took %s through a proxy of %s latency", i, took, latency)
		}
		if took > latency+2*time.Second {
			t.Errorf("request %d took %s: far more than the %s latency", i, took, latency)
		}
	}
	if st := p.stats(); st.Conns != 1 || st.Requests != 3 {
		t.Errorf("stats %+v: want 1 connection and 3 requests", st)
	}
}

func TestNetProxyDelaysAfterTheUploadsLastByte(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const latency = 50 * time.Millisecond
	const rate = 4e6 // 1 MB of body: ~0.25 s to send
	p, c := proxied(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		io.WriteString(w, strings.Repeat("x", int(n%7)))
	}), latency, rate)
	body := bytes.Repeat([]byte("s3bak"), 200000)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.URL+"/obj", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	// The cap's burst goes at once, the rest at the rate; then the latency.
	floor := time.Duration(float64(len(body)-proxyChunk)/rate*float64(time.Second)) + latency
	if took < floor {
		t.Errorf("a %d-byte PUT at %.0f B/s with %s latency took %s, want ≥ %s", len(body), rate, latency, took, floor)
	}
}

func TestNetProxyCapsBandwidthAndKeepsTheBytes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := make([]byte, 4<<20)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	p, c := proxied(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(data)
	}), 0, 8e6)
	body, took := get(ctx, t, c, p.URL+"/big")
	if sha256.Sum256(body) != sha256.Sum256(data) || len(body) != len(data) {
		t.Fatalf("got %d bytes, not the %d sent", len(body), len(data))
	}
	// 4 MiB at 8 MB/s is 0.52 s; less the bucket's first burst, ≥ 0.45 s.
	if took < 450*time.Millisecond {
		t.Errorf("4 MiB through a connection capped at 8 MB/s took %s, want ≥ 0.45 s", took)
	}
	if took > 5*time.Second {
		t.Errorf("4 MiB at 8 MB/s took %s: the cap is far lower than set", took)
	}
	if st := p.stats(); st.Down < int64(len(data)) || st.Up == 0 {
		t.Errorf("stats %+v: want ≥ %d bytes down", st, len(data))
	}
}

func TestNetProxyCloseEndsOpenConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, c := proxied(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	}), 0, 0)
	get(ctx, t, c, p.URL+"/") // leaves an idle keep-alive connection
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Close did not return with a connection open")
	}
}
