package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

// netProxy is the network section's TCP proxy between the tools and MinIO:
// it shapes loopback into something like a connection to S3. For each
// accepted connection it dials the upstream and copies both ways, and
//
//   - delays the first byte of every response: once a request's bytes have
//     gone to the upstream (the last of them, for an upload's body), the
//     upstream's reply is held until latency has passed since then, so a
//     request costs at least latency, as S3's first byte does;
//   - caps each direction of each connection at bandwidth bytes a second
//     with a token bucket (golang.org/x/time/rate).
//
// HTTP/1.1 clients do not pipeline: a connection alternates request and
// response, and "client bytes after the last reply began" is a request.
// Connection set-up itself is not delayed (a real TCP and TLS handshake
// costs 1–3 round trips more, which keep-alive amortizes). There is no cap
// on the sum of the connections: a client with many connections gets many
// times the cap, as it would from S3.
type netProxy struct {
	upstream  string // host:port
	latency   time.Duration
	bandwidth int64 // bytes a second, each direction of each connection; 0: no cap

	ln   net.Listener
	URL  string // http://host:port of the listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	live map[net.Conn]struct{}

	conns, requests, up, down atomic.Int64

	// log, when set, gets a line per request (-net-log): to count a tool's
	// round trips and see which of them wait for each other.
	logMu sync.Mutex
	log   io.Writer
	epoch time.Time
}

// proxyStats are the proxy's counters: connections accepted, responses
// delayed (≈ requests), bytes client → upstream and upstream → client.
type proxyStats struct {
	Conns, Requests, Up, Down int64
}

// proxyChunk is the largest read forwarded at once, and the token bucket's
// burst: 64 KiB is ~0.8 ms at 80 MB/s, so the rate holds within a few
// chunks even when a timer fires late on a busy machine.
const proxyChunk = 64 << 10

// startNetProxy listens on a loopback port and forwards to upstream
// (host:port).
func startNetProxy(upstream string, latency time.Duration, bandwidth int64) (*netProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &netProxy{upstream: upstream, latency: latency, bandwidth: bandwidth, ln: ln,
		URL: "http://" + ln.Addr().String(), live: map[net.Conn]struct{}{}, epoch: time.Now()}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *netProxy) stats() proxyStats {
	return proxyStats{Conns: p.conns.Load(), Requests: p.requests.Load(), Up: p.up.Load(), Down: p.down.Load()}
}

// Close stops accepting, closes every connection and waits for the
// copying goroutines.
func (p *netProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.live {
		c.Close()
	}
	p.live = nil
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *netProxy) track(c net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.live == nil {
			return false // closed
		}
		p.live[c] = struct{}{}
	} else {
		delete(p.live, c)
	}
	return true
}

func (p *netProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		p.wg.Add(1)
		go p.handle(c, p.conns.Add(1))
	}
}

// pending is one connection's request/response state, shared by its two
// directions.
type pending struct {
	mu      sync.Mutex
	waiting bool      // client bytes went up since the last reply began
	last    time.Time // when the last of them went up
	// For the log: the request line and when its first byte came.
	line  string
	start time.Time
}

func (p *netProxy) handle(client net.Conn, conn int64) {
	defer p.wg.Done()
	defer client.Close()
	if !p.track(client, true) {
		return
	}
	defer p.track(client, false)
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up, true) {
		return
	}
	defer p.track(up, false)
	st := &pending{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Waiting is set before the write, so the reply cannot overtake it;
		// last moves to the write's end, when the bytes are "there".
		p.pipe(up, client, &p.up, func(now time.Time, b []byte) {
			st.mu.Lock()
			if !st.waiting && p.log != nil {
				st.line, st.start = requestLine(b), now
			}
			st.waiting, st.last = true, now
			st.mu.Unlock()
		}, func(now time.Time) {
			st.mu.Lock()
			if st.waiting {
				st.last = now
			}
			st.mu.Unlock()
		})
	}()
	p.pipe(client, up, &p.down, func(now time.Time, b []byte) {
		st.mu.Lock()
		waiting, last, line, start := st.waiting, st.last, st.line, st.start
		st.waiting = false
		st.mu.Unlock()
		if !waiting {
			return
		}
		p.requests.Add(1)
		if d := time.Until(last.Add(p.latency)); d > 0 {
			time.Sleep(d)
		}
		if p.log != nil {
			p.logRequest(conn, line, start, last, requestLine(b))
		}
	}, func(time.Time) {})
	<-done
}

// pipe copies src to dst until EOF or an error, throttled at the cap;
// before runs ahead of each chunk's write, after once it is written. At
// src's EOF it half-closes dst, so the other direction can finish; on an
// error it closes both.
func (p *netProxy) pipe(dst, src net.Conn, count *atomic.Int64, before func(time.Time, []byte), after func(time.Time)) {
	var lim *rate.Limiter
	if p.bandwidth > 0 {
		lim = rate.NewLimiter(rate.Limit(p.bandwidth), proxyChunk)
	}
	buf := make([]byte, proxyChunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if lim != nil {
				_ = lim.WaitN(context.Background(), n) // n ≤ burst: never fails
			}
			before(time.Now(), buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
			after(time.Now())
			count.Add(int64(n))
		}
		if err != nil {
			if err == io.EOF {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
					return
				}
			}
			src.Close()
			dst.Close()
			return
		}
	}
}

// logRequest writes a line for a request of connection conn: when it
// began and ended going up, when its reply began (ms since the log began),
// the request line and the status line.
func (p *netProxy) logRequest(conn int64, line string, start, last time.Time, status string) {
	now := time.Now()
	ms := func(t time.Time) float64 { return float64(t.Sub(p.epoch).Microseconds()) / 1000 }
	p.logMu.Lock()
	defer p.logMu.Unlock()
	fmt.Fprintf(p.log, "%10.1f %10.1f %10.1f conn=%d %s -> %s\n", ms(start), ms(last), ms(now), conn, line, status)
}

// mark writes the command lines of a run about to start to the log, so
// that its requests are told from those of the run before.
func (p *netProxy) mark(stages []stage) {
	if p.log == nil {
		return
	}
	p.logMu.Lock()
	defer p.logMu.Unlock()
	for _, s := range stages {
		fmt.Fprintf(p.log, "%10.1f # %s %s\n", float64(time.Since(p.epoch).Microseconds())/1000, filepath.Base(s.Bin), strings.Join(s.Args, " "))
	}
}

// requestLine is b's first line, without its query's signature noise.
func requestLine(b []byte) string {
	line, _, _ := strings.Cut(string(b[:min(len(b), 300)]), "\r\n")
	return line
}

// selfCPU is the user + system CPU this process has used so far
// (getrusage RUSAGE_SELF): over a tool's run the bench only waits for the
// spawner, so the difference is the proxy's CPU.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
