package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// stalledBody gives the first half of a body, then blocks until the
// client goes away or the proxy closes.
type stalledBody struct {
	rest []byte
	ctx  context.Context
	done <-chan struct{}
}

var errStalled = errors.New("faultproxy: stalled body abandoned")

func (s *stalledBody) Read(b []byte) (int, error) {
	if len(s.rest) > 0 {
		n := copy(b, s.rest)
		s.rest = s.rest[n:]
		return n, nil
	}
	select {
	case <-s.ctx.Done():
	case <-s.done:
	}
	return 0, errStalled
}

func (s *stalledBody) Close() error { return nil }

// hijack takes the client's connection from the server and tracks it, so
// that Close can end it.
func (p *Proxy) hijack(w http.ResponseWriter) net.Conn {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return nil
	}
	p.hijacked[c] = struct{}{}
	return c
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.hijacked, c)
}

// abort closes c with a TCP reset.
func (p *Proxy) abort(c net.Conn) {
	p.forget(c)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *Proxy) blackhole(w http.ResponseWriter) {
	c := p.hijack(w)
	if c == nil {
		return
	}
	gone := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c) // until the client closes, or we do
		close(gone)
	}()
	select {
	case <-gone:
	case <-p.done:
	}
	p.forget(c)
	c.Close()
	<-gone
}

// status answers with code and S3's error document.
func (p *Proxy) status(w http.ResponseWriter, r *http.Request, code int) {
	codes := map[int]string{
		http.StatusInternalServerError: "InternalError",
		http.StatusServiceUnavailable:  "SlowDown",
		http.StatusNotFound:            "NoSuchKey",
		http.StatusForbidden:           "AccessDenied",
		http.StatusPreconditionFailed:  "PreconditionFailed",
		http.StatusBadRequest:          "BadRequest",
	}
	name, ok := codes[code]
	if !ok {
		name = "Fault" + strconv.Itoa(code)
	}
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>faultproxy answered %d %s</Message><Resource>%s</Resource><RequestId>faultproxy</RequestId></Error>`,
		name, code, http.StatusText(code), xmlEscape(r.URL.Path))
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-amz-request-id", "faultproxy")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

func xmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// outage closes the listener and every connection, and listens again d
// later. An outage already under way is not extended.
func (p *Proxy) outage(d time.Duration) {
	p.mu.Lock()
	if p.closed || p.down {
		p.mu.Unlock()
		return
	}
	p.down = true
	l := p.ln
	p.ln = nil
	var open []net.Conn
	for c := range p.conns {
		open = append(open, c)
	}
	for c := range p.hijacked {
		open = append(open, c)
	}
	clear(p.hijacked)
	p.wg.Add(1) // the caller is a handler, so the count is not zero
	p.mu.Unlock()
	l.Close()
	for _, c := range open {
		c.Close()
	}
	go func() {
		defer p.wg.Done()
		select {
		case <-time.After(d):
		case <-p.done:
			return
		}
		for {
			nl, err := net.Listen("tcp", p.addr)
			if err == nil {
				p.mu.Lock()
				if p.closed {
					p.mu.Unlock()
					nl.Close()
					return
				}
				p.ln, p.down = nl, false
				p.serve(nl) // under the lock: Close cannot be waiting yet
				p.mu.Unlock()
				return
			}
			select {
			case <-time.After(20 * time.Millisecond): // the port is briefly busy
			case <-p.done:
				return
			}
		}
	}()
}

// Down reports whether an outage is under way.
func (p *Proxy) Down() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.down
}
