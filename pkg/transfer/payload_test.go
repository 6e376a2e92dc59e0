package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// bodyRequest is what the recording proxy saw of one request with a body.
type bodyRequest struct {
	method, query        string
	contentSHA256, crc32 string
}

// recordingProxy forwards to MinIO unchanged (the Host header too, so
// signatures still verify), records the requests that carry a body, and
// flips one byte of the first corruptN of them.
func recordingProxy(t *testing.T, corruptN int) (string, func() []bodyRequest) {
	t.Helper()
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var seen []bodyRequest
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 0 && (r.Method == http.MethodPut) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			seen = append(seen, bodyRequest{r.Method, r.URL.RawQuery, r.Header.Get("X-Amz-Content-Sha256"), r.Header.Get("X-Amz-Checksum-Crc32c")})
			if corruptN > 0 {
				corruptN--
				body[len(body)/2] ^= 0x55
			}
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL, func() []bodyRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]bodyRequest(nil), seen...)
	}
}

// TestUploadsOverHTTPSkipThePayloadHash checks that file data goes out as
// UNSIGNED-PAYLOAD with a signed CRC32C the server checks: a body damaged
// on the way is refused (and the SDK's retry then stores the right bytes),
// and with when_required, which sends no CRC, the SHA-256 is kept.
func TestUploadsOverHTTPSkipThePayloadHash(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 2*MinPartSize+777)
	rand.Read(data)
	for _, tc := range []struct {
		mode     string
		unsigned bool
	}{{"when_supported", true}, {"when_required", false}} {
		t.Run(tc.mode, func(t *testing.T) {
			endpoint, seen := recordingProxy(t, 1)
			c, err := New(ctx, Options{Bucket: "transfer", EndpointURL: endpoint, ChecksumCalculation: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			up := c.NewUploader(UploaderOptions{PartSize: MinPartSize, Concurrency: 2})
			key := "unsigned/" + tc.mode
			if err := up.Upload(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatalf("upload: %v", err)
			}
			small := []byte("a small object")
			if err := c.PutBytes(ctx, key+"-small", small, ""); err != nil {
				t.Fatalf("put: %v", err)
			}
			reqs := seen()
			parts := 0
			for _, r := range reqs {
				isPart := strings.Contains(r.query, "partNumber=")
				if isPart {
					parts++
				}
				if tc.unsigned && (r.contentSHA256 != "UNSIGNED-PAYLOAD" || r.crc32 == "") {
					t.Errorf("%s ?%s: x-amz-content-sha256 %q, crc32c %q; want UNSIGNED-PAYLOAD with a CRC32C", r.method, r.query, r.contentSHA256, r.crc32)
				}
				if !tc.unsigned && (len(r.contentSHA256) != 64 || r.crc32 != "") {
					t.Errorf("%s ?%s: x-amz-content-sha256 %q, crc32c %q; want the body's SHA-256 and no CRC", r.method, r.query, r.contentSHA256, r.crc32)
				}
			}
			// 3 parts, the damaged one sent again, and the small PUT.
			if parts != 4 || len(reqs) != 5 {
				t.Fatalf("saw %d part uploads and %d bodies, want 4 (one retried) and 5", parts, len(reqs))
			}
			got, err := c.GetBytes(ctx, key, 1<<30)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes (err %v): the damaged part was stored", len(got), err)
			}
			if got, err := c.GetBytes(ctx, key+"-small", 1<<20); err != nil || !bytes.Equal(got, small) {
				t.Fatalf("small object read back as %q (err %v)", got, err)
			}
		})
	}
}
