// Package faultproxy is an HTTP proxy for tests that breaks chosen requests
// on their way to a real server (MinIO): replies lost after the server acted,
// connections reset or black-holed, bodies that stall half-way or arrive
// with a flipped bit, error statuses, and outages during which connections
// are refused. Everything else is forwarded unchanged, the Host header as
// the client sent it included, so SigV4 signatures still verify; bodies are
// streamed both ways.
//
// Rules decide per request: each rule counts the requests its Match
// accepts, skips the first After of them and breaks the next Times (all
// when 0). The first rule, in the order they were added, whose window holds
// the request applies its fault.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing/iotest"
	"time"
)

type kind int

const (
	pass kind = iota
	dropReply
	reset
	blackhole
	stallBody
	cutBody
	flipBit
	status
	outage
	delay
	hold
)

// Fault is what the proxy does to a request a rule applies to. The zero
// Fault forwards it unchanged: a rule with it only counts.
type Fault struct {
	kind  kind
	code  int
	d     time.Duration
	until <-chan struct{}
}

var (
	// DropReply forwards the request, reads the server's whole answer, and
	// closes the client's connection without answering: the server acted
	// (a write happened), the client never hears of it.
	DropReply = Fault{kind: dropReply}
	// Reset closes the client's connection (with a TCP reset) before
	// anything is forwarded: the request never reaches the server.
	Reset = Fault{kind: reset}
	// Blackhole holds the client's connection open and says nothing, until
	// the client gives up or the proxy is closed. Nothing is forwarded.
	Blackhole = Fault{kind: blackhole}
	// StallBody forwards the request and sends the server's status, headers
	// (its Content-Length too) and the first half of its body, then hangs
	// until the client goes away or the proxy is closed.
	StallBody = Fault{kind: stallBody}
	// CutBody forwards the request and sends the server's status, headers
	// (its Content-Length too) and the first half of its body, then closes
	// the connection: a reply cut short, as by a connection that dies.
	CutBody = Fault{kind: cutBody}
	// FlipBit forwards the request and flips one bit in the middle of the
	// answer's body (a body of no bytes is left as it is).
	FlipBit = Fault{kind: flipBit}
)

// Status answers the request itself with code and an S3 XML error body
// (InternalError for 500, SlowDown for 503, …); nothing is forwarded.
func Status(code int) Fault { return Fault{kind: status, code: code} }

// Outage takes the proxy down for d: the request's connection is reset,
// every open connection is closed, and the port refuses connections until
// the proxy listens on it again, d later (a server down or restarting).
func Outage(d time.Duration) Fault { return Fault{kind: outage, d: d} }

// Delay forwards the request d after it arrived: a server a round trip
// of d away.
func Delay(d time.Duration) Fault { return Fault{kind: delay, d: d} }

// Hold forwards the request once until is closed: a test lets it through
// when something else has happened, in the order it wants to see.
func Hold(until <-chan struct{}) Fault { return Fault{kind: hold, until: until} }

func (f Fault) String() string {
	switch f.kind {
	case pass:
		return "pass"
	case dropReply:
		return "drop reply"
	case reset:
		return "reset"
	case blackhole:
		return "blackhole"
	case stallBody:
		return "stall body"
	case cutBody:
		return "cut body"
	case flipBit:
		return "flip bit"
	case status:
		return "status " + strconv.Itoa(f.code)
	case outage:
		return "outage " + f.d.String()
	case delay:
		return "delay " + f.d.String()
	case hold:
		return "hold"
	}
	return "fault?"
}

// Rule chooses requests and what happens to them.
type Rule struct {
	// Match chooses the requests the rule counts; nil matches all. It must
	// not read the body, and is called with the proxy's lock held.
	Match func(*http.Request) bool
	// After is how many matching requests pass before the fault applies.
	After int
	// Times is how many matching requests the fault applies to after
	// those; 0 is every one.
	Times int
	Fault Fault
}

// Counts are a rule's counters.
type Counts struct {
	p             *Proxy
	rule          Rule
	seen, applied int
}

// Seen is how many requests the rule matched so far, faulted or not.
func (c *Counts) Seen() int {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return c.seen
}

// Applied is how many requests the rule's fault was applied to.
func (c *Counts) Applied() int {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return c.applied
}

// Request matches requests by method ("" any) and by a substring of the
// URL's path ("" any): with path-style addressing, /bucket/key.
func Request(method, pathContains string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return (method == "" || r.Method == method) && strings.Contains(r.URL.Path, pathContains)
	}
}

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	// URL is the proxy's address, http://127.0.0.1:port; it stays the same
	// across outages.
	URL string

	addr      string
	target    *url.URL
	srv       *http.Server
	rp        *httputil.ReverseProxy
	transport *http.Transport
	done      chan struct{}
	wg        sync.WaitGroup // handlers, servers and outages

	mu       sync.Mutex
	closed   bool
	down     bool
	ln       net.Listener
	conns    map[net.Conn]struct{} // served, not hijacked
	hijacked map[net.Conn]struct{}
	rules    []*Counts
	total    int
}

type faultKey struct{}

// New starts a proxy on a free port of 127.0.0.1 in front of target (a URL
// such as http://127.0.0.1:9000). Close ends it.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("target %q: want scheme://host:port", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		URL: "http://" + ln.Addr().String(), addr: ln.Addr().String(), target: u,
		done: make(chan struct{}), ln: ln,
		conns: map[net.Conn]struct{}{}, hijacked: map[net.Conn]struct{}{},
	}
	p.transport = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true, // bodies pass as the server sent them
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = u.Scheme
			pr.Out.URL.Host = u.Host
			// pr.Out.Host stays the client's: SigV4 signed it.
		},
		Transport:      p.transport,
		FlushInterval:  -1, // every write reaches the client at once
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       discardLog,
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP),
		ReadHeaderTimeout: time.Minute,
		ConnState:         p.connState,
		ErrorLog:          discardLog,
	}
	p.serve(ln)
	return p, nil
}

// serve runs the server on l; the caller holds the proxy open.
var discardLog = log.New(io.Discard, "", 0)

func (p *Proxy) serve(l net.Listener) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = p.srv.Serve(l)
	}()
}

func (p *Proxy) connState(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		if p.down {
			// Accepted between an outage's snapshot of the connections and
			// the listener's close: it must not serve through the outage.
			c.Close()
			return
		}
		p.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(p.conns, c)
	}
}

// Add installs a rule after those already there and returns its counters.
func (p *Proxy) Add(r Rule) *Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := &Counts{p: p, rule: r}
	p.rules = append(p.rules, c)
	return c
}

// ClearRules removes every rule: from now on everything is forwarded.
func (p *Proxy) ClearRules() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Requests is how many requests the proxy received.
func (p *Proxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// decide counts r in every rule that matches it and returns the fault of
// the first whose window holds it.
func (p *Proxy) decide(r *http.Request) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Fault{}, false
	}
	p.total++
	var chosen Fault
	found := false
	for _, c := range p.rules {
		if c.rule.Match != nil && !c.rule.Match(r) {
			continue
		}
		c.seen++
		if found || c.seen <= c.rule.After || (c.rule.Times > 0 && c.seen > c.rule.After+c.rule.Times) {
			continue
		}
		c.applied++
		chosen, found = c.rule.Fault, true
	}
	p.wg.Add(1) // the handler, while the proxy is open
	return chosen, true
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f, open := p.decide(r)
	if !open {
		panic(http.ErrAbortHandler) // closes the connection
	}
	defer p.wg.Done()
	switch f.kind {
	case reset:
		if c := p.hijack(w); c != nil {
			p.abort(c)
		}
	case blackhole:
		p.blackhole(w)
	case status:
		p.status(w, r, f.code)
	case outage:
		if c := p.hijack(w); c != nil {
			p.abort(c)
		}
		p.outage(f.d)
	case delay, hold:
		var wait <-chan time.Time
		if f.kind == delay {
			wait = time.After(f.d)
		}
		select {
		case <-wait:
		case <-f.until:
		case <-r.Context().Done():
			return
		case <-p.done:
			return
		}
		p.rp.ServeHTTP(w, r)
	default:
		p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), faultKey{}, f)))
	}
}

// errDropReply makes the reverse proxy call errorHandler, which drops the
// connection, once the server's answer has been read.
var errDropReply = errors.New("faultproxy: reply dropped")

func (p *Proxy) modifyResponse(res *http.Response) error {
	f, _ := res.Request.Context().Value(faultKey{}).(Fault)
	switch f.kind {
	case dropReply:
		_, _ = io.Copy(io.Discard, res.Body) // the server finishes its answer
		return errDropReply
	case flipBit:
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		if len(b) > 0 {
			b[len(b)/2] ^= 0x08
		}
		res.Body = io.NopCloser(bytes.NewReader(b))
	case stallBody:
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		res.Body = &stalledBody{rest: b[:len(b)/2], ctx: res.Request.Context(), done: p.done}
	case cutBody:
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		// The reverse proxy aborts the connection when the body fails
		// after the headers are out.
		res.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotest.ErrReader(errCutBody)))
	}
	return nil
}

var errCutBody = errors.New("faultproxy: body cut")

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errDropReply) {
		if c := p.hijack(w); c != nil {
			p.forget(c)
			c.Close()
		}
		return
	}
	if r.Context().Err() != nil {
		return // the client went away, or the proxy is closing
	}
	http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
}

// Close stops the proxy: the listener, every connection (black-holed and
// stalled ones too) and every handler end before it returns.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	var open []net.Conn
	for c := range p.hijacked {
		open = append(open, c)
	}
	clear(p.hijacked)
	p.mu.Unlock()
	_ = p.srv.Close() // the listener and the served connections
	for _, c := range open {
		c.Close()
	}
	p.wg.Wait()
	p.transport.CloseIdleConnections()
}
