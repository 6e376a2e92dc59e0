package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
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
	return send(ctx, t, c, http.MethodGet, url, nil)
}

// send makes a request within ctx and returns the response's body, which
// must come with 200 OK, and how long the whole exchange took.
func send(ctx context.Context, t *testing.T, c *http.Client, method, url string, reqBody io.Reader) ([]byte, time.Duration) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, reqBody)
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
	_, took := send(ctx, t, c, http.MethodPut, p.URL+"/obj", bytes.NewReader(body))
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

func TestNetProxyDelaysOnlyTheFirstByteOfAReply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const latency, chunks = 50 * time.Millisecond, 20
	p, c := proxied(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for range chunks { // each its own write to the connection
			w.Write(bytes.Repeat([]byte("c"), 1000))
			w.(http.Flusher).Flush()
			time.Sleep(time.Millisecond)
		}
	}), latency, 0)
	body, took := get(ctx, t, c, p.URL+"/stream")
	if len(body) != chunks*1000 {
		t.Fatalf("got %d bytes", len(body))
	}
	if took < latency || took > chunks*latency/2 {
		t.Errorf("a reply of %d writes took %s: want the %s latency once", chunks, took, latency)
	}
	if st := p.stats(); st.Requests != 1 {
		t.Errorf("stats %+v: want 1 request", st)
	}
}

func TestNetworkFlagsSectionsAndTargets(t *testing.T) {
	cfg, err := parseFlags([]string{"-sections", "network", "-net-latency", "35ms", "-net-bandwidth", "50MB"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.netLatency != 35*time.Millisecond || cfg.netBandwidth != 50e6 || !cfg.sections["network"] {
		t.Errorf("parsed %v, %d, %v", cfg.netLatency, cfg.netBandwidth, cfg.sections)
	}
	if cfg, err = parseFlags(nil); err != nil || cfg.netLatency != 20*time.Millisecond || cfg.netBandwidth != 80e6 {
		t.Errorf("defaults: %v, %v", cfg, err)
	}
	if _, err := parseFlags([]string{"-net-latency", "-1ms"}); err == nil {
		t.Error("a negative latency was accepted")
	}
	if got := sectionParts("network"); !slices.Equal(got, []string{"network-default", "network-small"}) {
		t.Errorf("network runs %v", got)
	}
	sec := func(name string, backup, upload, restore, download float64) *section {
		s := &section{Name: name}
		for _, r := range []struct {
			tool, op string
			mbps     float64
		}{{"s3bak backup", "backup", backup}, {"s5cmd upload", "upload", upload},
			{"s3bak restore", "restore", restore}, {"s5cmd download", "download", download}} {
			row := s.row(r.tool, r.op, 1)
			row.Runs, row.MBps = []roundRun{{Round: 1, WallS: 1}}, r.mbps
		}
		s.finishRatios()
		return s
	}
	got := map[string]bool{}
	for _, tg := range evaluateTargets([]*section{sec("network-default", 100, 40, 100, 60), sec("network-small", 100, 5, 100, 20)}) {
		if strings.HasPrefix(tg.Name, "network:") {
			if tg.Met == nil {
				t.Fatalf("%s: not measured (%s)", tg.Name, tg.Note)
			}
			got[tg.Name] = *tg.Met
		}
	}
	want := map[string]bool{
		"network: s3bak backup MB/s ≥ 2× s5cmd upload (default set)":     true,
		"network: s3bak restore MB/s ≥ 2× s5cmd download (default set)":  false,
		"network: s3bak backup MB/s ≥ 10× s5cmd upload (small files)":    true,
		"network: s3bak restore MB/s ≥ 10× s5cmd download (small files)": false,
	}
	if !maps.Equal(got, want) {
		t.Errorf("network targets %v, want %v", got, want)
	}
}
