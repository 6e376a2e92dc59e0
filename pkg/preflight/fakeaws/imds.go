package fakeaws

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Token is the IMDSv2 session token the fake hands out.
const Token = "AQAEAFake-token=="

// IMDS serves IMDSv2: PUT /latest/api/token with a TTL header, then GETs
// that must carry the token (401 without it), 404 for unknown paths.
type IMDS struct {
	// Meta maps paths under /latest/meta-data/ to their bodies.
	Meta map[string]string
	// NoTTLHeader misbehaves: the token reply omits the
	// X-Aws-Ec2-Metadata-Token-Ttl-Seconds header, which the SDK needs.
	NoTTLHeader bool

	mu    sync.Mutex
	calls int
}

func (f *IMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/latest/api/token" && r.Method == http.MethodPut:
		if r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "", http.StatusForbidden)
			return
		}
		ttl := r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")
		if n, err := strconv.Atoi(ttl); err != nil || n < 1 || n > 21600 {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		if !f.NoTTLHeader {
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
		}
		io.WriteString(w, Token)
	case strings.HasPrefix(r.URL.Path, "/latest/meta-data/") && r.Method == http.MethodGet:
		if r.Header.Get("X-aws-ec2-metadata-token") != Token {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		body, ok := f.Meta[strings.TrimPrefix(r.URL.Path, "/latest/meta-data/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	default:
		http.Error(w, "", http.StatusMethodNotAllowed)
	}
}

// Calls is the number of requests served so far.
func (f *IMDS) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}
