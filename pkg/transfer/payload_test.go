package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"hash/crc32"
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
// flips one byte of the first attempt of each of them (the first request
// of every URL), so that every upload is stored only by a retry.
func recordingProxy(t *testing.T) (string, func() []bodyRequest) {
	t.Helper()
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var seen []bodyRequest
	damaged := map[string]bool{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > 0 && (r.Method == http.MethodPut) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			seen = append(seen, bodyRequest{r.Method, r.URL.RawQuery, r.Header.Get("X-Amz-Content-Sha256"), r.Header.Get("X-Amz-Checksum-Crc32c")})
			if u := r.URL.String(); !damaged[u] {
				damaged[u] = true
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
// UNSIGNED-PAYLOAD with a signed CRC32C the server checks — the Uploader's
// single PUTs (of a seekable body and of one that is read into memory
// first), every part of a multipart upload, and Put's PUT: a body damaged
// on the way is refused, and the client's retry then stores the right
// bytes. With when_required, which sends no CRC, the SHA-256 is kept.
func TestUploadsOverHTTPSkipThePayloadHash(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 2*MinPartSize+777)
	rand.Read(data)
	object := data[:1<<20+333]
	for _, tc := range []struct {
		mode     string
		unsigned bool
	}{{"when_supported", true}, {"when_required", false}} {
		t.Run(tc.mode, func(t *testing.T) {
			endpoint, seen := recordingProxy(t)
			c, err := New(ctx, Options{Bucket: "transfer", EndpointURL: endpoint, ChecksumCalculation: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			up := c.NewUploader(UploaderOptions{PartSize: MinPartSize, Concurrency: 2})
			key := "unsigned/" + tc.mode
			if err := up.Upload(ctx, key+"-object", Bytes(object)); err != nil {
				t.Fatalf("upload: %v", err)
			}
			// A body summed by its caller: its checksum is sent as it is.
			summed := Body{Pieces: [][]byte{object[:1000], object[1000:]}, CRC32C: crc32.Checksum(object, castagnoli), Summed: true}
			if err := up.Upload(ctx, key+"-summed", summed); err != nil {
				t.Fatalf("upload of a summed body: %v", err)
			}
			if err := uploadStream(ctx, c, key, bytes.NewReader(data), MinPartSize, 2); err != nil {
				t.Fatalf("multipart upload: %v", err)
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
			// Every body sent twice (damaged, then retried): 3 parts, the
			// Uploader's 2 PUTs and the small PUT.
			if parts != 6 || len(reqs) != 12 {
				t.Fatalf("saw %d part uploads and %d bodies, want 6 and 12", parts, len(reqs))
			}
			for k, want := range map[string][]byte{key: data, key + "-object": object, key + "-summed": object, key + "-small": small} {
				got, err := c.GetBytes(ctx, k, 1<<30)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s read back as %d bytes (err %v), want the %d sent: a damaged body was stored", k, len(got), err, len(want))
				}
			}
		})
	}
}
