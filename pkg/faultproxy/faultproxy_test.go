package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/bits"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// seen is what the target received of one request.
type seen struct {
	method, path, query, host, header string
	body                              []byte
}

// target is a plain HTTP server standing in for MinIO.
type target struct {
	*httptest.Server
	obj []byte // GET /obj answers these bytes

	mu   sync.Mutex
	reqs []seen

	gotHead chan struct{} // PUT /pipe: the first 5 body bytes arrived
	release chan struct{} // GET /stream: send the second part
}

func newTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{obj: make([]byte, 64<<10), gotHead: make(chan struct{}), release: make(chan struct{})}
	for i := range tg.obj {
		tg.obj[i] = byte(i * 7)
	}
	tg.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.URL.Path == "/pipe" {
			head := make([]byte, 5)
			if _, err := io.ReadFull(r.Body, head); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			close(tg.gotHead)
			rest, _ := io.ReadAll(r.Body)
			body = append(head, rest...)
		} else {
			body, _ = io.ReadAll(r.Body)
		}
		tg.mu.Lock()
		tg.reqs = append(tg.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Get("X-Amz-Date"), body})
		tg.mu.Unlock()
		switch {
		case r.URL.Path == "/stream":
			w.Header().Set("Content-Length", "12")
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			select {
			case <-tg.release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, " second")
		case r.Method == http.MethodGet:
			w.Header().Set("ETag", `"abc"`)
			w.Header().Set("Content-Length", strconv.Itoa(len(tg.obj)))
			w.Write(tg.obj)
		default:
			w.Header().Set("ETag", `"put"`)
			w.Write(body)
		}
	}))
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) requests() []seen {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]seen(nil), tg.reqs...)
}

// start runs a proxy in front of tg, closed at the end of the test; a
// Close that hangs fails the test.
func start(t *testing.T, tg *target) *Proxy {
	t.Helper()
	p, err := New(tg.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeWithin(t, p, 5*time.Second) })
	return p
}

func closeWithin(t *testing.T, p *Proxy, limit time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("proxy Close did not return within %s", limit)
	}
}

func newClient(t *testing.T, timeout time.Duration) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

func do(t *testing.T, c *http.Client, method, url string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestForwardsUnchanged(t *testing.T) {
	tg := newTarget(t)
	p := start(t, tg)
	count := p.Add(Rule{}) // counts, breaks nothing
	c := newClient(t, 10*time.Second)

	req, _ := http.NewRequest(http.MethodPut, p.URL+"/bucket/some/key?partNumber=2&uploadId=x", bytes.NewReader([]byte("payload")))
	req.Host = "s3.example.test:9000" // signed by SigV4: must arrive as sent
	req.Header.Set("X-Amz-Date", "20260101T000000Z")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"put"` || string(body) != "payload" {
		t.Fatalf("answer %d %q %q", resp.StatusCode, resp.Header.Get("ETag"), body)
	}
	got := tg.requests()
	want := seen{http.MethodPut, "/bucket/some/key", "partNumber=2&uploadId=x", "s3.example.test:9000", "20260101T000000Z", []byte("payload")}
	if len(got) != 1 || got[0].method != want.method || got[0].path != want.path || got[0].query != want.query ||
		got[0].host != want.host || got[0].header != want.header || !bytes.Equal(got[0].body, want.body) {
		t.Fatalf("target saw %+v, want %+v", got, want)
	}
	if _, b, err := do(t, c, http.MethodGet, p.URL+"/obj", nil); err != nil || !bytes.Equal(b, tg.obj) {
		t.Fatalf("GET through the proxy: %d bytes, %v", len(b), err)
	}
	if count.Seen() != 2 || count.Applied() != 2 || p.Requests() != 2 {
		t.Fatalf("counted %d seen, %d applied, %d requests; want 2, 2, 2", count.Seen(), count.Applied(), p.Requests())
	}
}

// TestStreams: neither body waits for its end before it is passed on.
func TestStreams(t *testing.T) {
	tg := newTarget(t)
	p := start(t, tg)
	c := newClient(t, 10*time.Second)

	// The answer's first part arrives while the target still holds the rest.
	resp, err := c.Get(p.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
		t.Fatalf("first part %q, %v", first, err)
	}
	close(tg.release)
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(rest) != " second" {
		t.Fatalf("rest %q, %v", rest, err)
	}

	// The request's first bytes reach the target before the client sent the rest.
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Post(p.URL+"/pipe", "application/octet-stream", pr)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	if _, err := pw.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tg.gotHead:
	case <-time.After(5 * time.Second):
		t.Fatal("the request body's first bytes did not reach the target before its end")
	}
	pw.Write([]byte(" world"))
	pw.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := tg.requests(); string(got[len(got)-1].body) != "hello world" {
		t.Fatalf("target got body %q", got[len(got)-1].body)
	}
}

func TestDropReply(t *testing.T) {
	tg := newTarget(t)
	p := start(t, tg)
	rule := p.Add(Rule{Match: Request(http.MethodPut, "/k"), Times: 1, Fault: DropReply})
	c := newClient(t, 10*time.Second)
	if _, _, err := do(t, c, http.MethodPut, p.URL+"/k", []byte("written")); err == nil {
		t.Fatal("PUT whose reply was dropped: no error")
	} else {
		t.Logf("client saw: %v", err)
	}
	got := tg.requests()
	if len(got) != 1 || got[0].method != http.MethodPut || string(got[0].body) != "written" {
		t.Fatalf("target saw %+v: the request should have reached it whole", got)
	}
	// The next one passes.
	if resp, b, err := do(t, c, http.MethodPut, p.URL+"/k", []byte("again")); err != nil || resp.StatusCode != 200 || string(b) != "again" {
		t.Fatalf("second PUT: %v", err)
	}
	if rule.Seen() != 2 || rule.Applied() != 1 {
		t.Fatalf("rule seen %d applied %d, want 2 and 1", rule.Seen(), rule.Applied())
	}
}

func TestReset(t *testing.T) {
	tg := newTarget(t)
	p := start(t, tg)
	p.Add(Rule{Fault: Reset})
	c := newClient(t, 10*time.Second)
	_, _, err := do(t, c, http.MethodPut, p.URL+"/k", []byte("never"))
	if err == nil {
		t.Fatal("reset request: no error")
	}
	t.Logf("client saw: %v", err)
	if n := len(tg.requests()); n != 0 {
		t.Fatalf("target saw %d requests, want none", n)
	}
}

func TestBlackhole(t *testing.T) {
	tg := newTarget(t)
	p, err := New(tg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Add(Rule{Fault: Blackhole})

	start := time.Now()
	_, _, err = do(t, newClient(t, 300*time.Millisecond), http.MethodGet, p.URL+"/obj", nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("black-holed GET: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("gave up after %s: the proxy did not hold the connection", d)
	}

	// A client without a timeout hangs until the proxy closes.
	errc := make(chan error, 1)
	patient := newClient(t, 0)
	go func() {
		_, _, err := do(t, patient, http.MethodGet, p.URL+"/obj", nil)
		errc <- err
	}()
	select {
	case err := <-errc:
		t.Fatalf("black-holed GET returned early: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	closeWithin(t, p, 5*time.Second)
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("black-holed GET succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the black-holed client still hangs after Close")
	}
	if n := len(tg.requests()); n != 0 {
		t.Fatalf("target saw %d requests, want none", n)
	}
}

func TestStallBody(t *testing.T) {
	tg := newTarget(t)
	p, err := New(tg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Add(Rule{Fault: StallBody})
	c := newClient(t, 0)

	// The client gives up: the handler ends (Close below does not wait).
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/obj", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(tg.obj)) || resp.Header.Get("ETag") != `"abc"` {
		t.Fatalf("answer %d, length %d, ETag %q: want the target's", resp.StatusCode, resp.ContentLength, resp.Header.Get("ETag"))
	}
	half := make([]byte, len(tg.obj)/2)
	if _, err := io.ReadFull(resp.Body, half); err != nil || !bytes.Equal(half, tg.obj[:len(half)]) {
		t.Fatalf("first half: %v", err)
	}
	readc := make(chan error, 1)
	go func() { _, err := resp.Body.Read(make([]byte, 1)); readc <- err }()
	select {
	case err := <-readc:
		t.Fatalf("read past the first half returned: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-readc:
		if err == nil {
			t.Fatal("read after cancel: no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still hangs after the client cancelled")
	}
	resp.Body.Close()

	// A second one stalls until the proxy closes.
	resp, err = c.Get(p.URL + "/obj")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() { _, err := io.ReadAll(resp.Body); readc <- err }()
	select {
	case err := <-readc:
		t.Fatalf("stalled body ended early: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	closeWithin(t, p, 5*time.Second)
	select {
	case err := <-readc:
		if err == nil {
			t.Fatal("stalled body read whole")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still hangs after Close")
	}
}

func TestFlipBit(t *testing.T) {
	tg := newTarget(t)
	p := start(t, tg)
	p.Add(Rule{Match: Request(http.MethodGet, ""), Times: 1, Fault: FlipBit})
	c := newClient(t, 10*time.Second)
	resp, b, err := do(t, c, http.MethodGet, p.URL+"/obj", nil)
	if err != nil || resp.StatusCode != 200 || len(b) != len(tg.obj) {
		t.Fatalf("GET: %v, %d bytes", err, len(b))
	}
	diff := 0
	for i := range b {
		d := bits.OnesCount8(b[i] ^ tg.obj[i])
		if d > 0 && i != len(b)/2 {
			t.Fatalf("byte %d differs, want only the middle one (%d)", i, len(b)/2)
		}
		diff += d
	}
	if diff != 1 {
		t.Fatalf("%d bits differ, want 1", diff)
	}
	if _, b, err := do(t, c, http.MethodGet, p.URL+"/obj", nil); err != nil || !bytes.Equal(b, tg.obj) {
		t.Fatalf("second GET (rule used up) differs: %v", err)
	}
}

func TestStatus(t *testing.T) {
	tg := newTarget(t)
	p := start(t, tg)
	p.Add(Rule{Match: Request(http.MethodHead, ""), Fault: Status(500)})
	p.Add(Rule{Match: Request(http.MethodPut, ""), Fault: Status(503)})
	c := newClient(t, 10*time.Second)
	resp, b, err := do(t, c, http.MethodPut, p.URL+"/bucket/k", []byte("x"))
	if err != nil || resp.StatusCode != 503 || !strings.Contains(string(b), "<Error><Code>SlowDown</Code>") || !strings.Contains(string(b), "/bucket/k") {
		t.Fatalf("PUT: %v, %v, %s", err, resp, b)
	}
	resp, b, err = do(t, c, http.MethodHead, p.URL+"/bucket/k", nil)
	if err != nil || resp.StatusCode != 500 || len(b) != 0 {
		t.Fatalf("HEAD: %v, %v, %q", err, resp, b)
	}
	p.ClearRules()
	p.Add(Rule{Fault: Status(500)})
	if _, b, _ := do(t, c, http.MethodGet, p.URL+"/k", nil); !strings.Contains(string(b), "<Code>InternalError</Code>") {
		t.Fatalf("GET body %s", b)
	}
	if n := len(tg.requests()); n != 0 {
		t.Fatalf("target saw %d requests, want none", n)
	}
}

func TestOutage(t *testing.T) {
	tg := newTarget(t)
	p := start(t, tg)
	const down = 700 * time.Millisecond
	// Every /down request: net/http retries a GET that failed on a kept-alive
	// connection, and that retry must not pass either.
	p.Add(Rule{Match: Request(http.MethodGet, "/down"), Fault: Outage(down)})
	c := newClient(t, 10*time.Second)
	// A kept-alive connection from before: the outage closes it.
	if _, _, err := do(t, c, http.MethodGet, p.URL+"/obj", nil); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, _, err := do(t, c, http.MethodGet, p.URL+"/down", nil); err == nil {
		t.Fatal("the request that took the proxy down succeeded")
	}
	if !p.Down() {
		t.Fatal("not down")
	}
	addr := strings.TrimPrefix(p.URL, "http://")
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("connected during the outage")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial during the outage: %v, want connection refused", err)
	}
	for {
		_, b, err := do(t, c, http.MethodGet, p.URL+"/obj", nil)
		if err == nil && bytes.Equal(b, tg.obj) {
			break
		}
		if time.Since(began) > 10*time.Second {
			t.Fatalf("still down after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(began); d < down-50*time.Millisecond {
		t.Fatalf("up again after %s, want %s", d, down)
	}
	if p.Down() {
		t.Fatal("still marked down")
	}
	if n := len(tg.requests()); n != 2 {
		t.Fatalf("target saw %d requests, want the 2 GETs of /obj", n)
	}
}

// TestAfterTimes: a rule skips After matches, breaks the next Times, and
// lets the rest pass; every matching rule counts, the first one in its
// window applies.
func TestAfterTimes(t *testing.T) {
	tg := newTarget(t)
	p := start(t, tg)
	first := p.Add(Rule{Match: Request(http.MethodGet, "/obj"), After: 1, Times: 2, Fault: Status(503)})
	second := p.Add(Rule{Match: Request(http.MethodGet, ""), Fault: Status(500)})
	c := newClient(t, 10*time.Second)
	var codes []int
	for range 4 {
		resp, _, err := do(t, c, http.MethodGet, p.URL+"/obj", nil)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{500, 503, 503, 500}; !slices.Equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	if first.Seen() != 4 || first.Applied() != 2 || second.Seen() != 4 || second.Applied() != 2 {
		t.Fatalf("first %d/%d, second %d/%d (seen/applied); want 4/2 and 4/2",
			first.Seen(), first.Applied(), second.Seen(), second.Applied())
	}
}
