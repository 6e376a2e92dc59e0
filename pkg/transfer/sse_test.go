package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/s3bak/s3bak/pkg/faultproxy"
)

type seen struct {
	op     string
	header http.Header
}

// recorded returns a client with o's settings that reaches MinIO through a
// proxy recording every request's headers.
func recorded(t *testing.T, o Options) (*Client, func() []seen) {
	t.Helper()
	p, err := faultproxy.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	var mu sync.Mutex
	var reqs []seen
	p.Add(faultproxy.Rule{Match: func(r *http.Request) bool {
		op := r.Method
		if r.URL.RawQuery != "" {
			op += " ?" + strings.SplitN(r.URL.RawQuery, "=", 2)[0]
		}
		mu.Lock()
		reqs = append(reqs, seen{op, r.Header.Clone()})
		mu.Unlock()
		return false
	}})
	o.Bucket, o.EndpointURL, o.MaxAttempts = "transfer", p.URL, 1
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		r := reqs
		reqs = nil
		return r
	}
}

// everyOperation makes each request s3bak makes on objects once; errors
// are the server's business here (MinIO refuses SSE-C over plain HTTP and
// classes it does not store), only the requests sent matter.
func everyOperation(ctx context.Context, c *Client, key string) []error {
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	keep(c.PutBytes(ctx, key+"/small", []byte("manifest"), "application/json"))
	_, _, err := c.GetSmall(ctx, key+"/small", 100)
	keep(err)
	_, err = c.Head(ctx, key+"/small")
	keep(err)
	if body, err := c.Get(ctx, key+"/small", 1, 2); err == nil {
		body.Close()
	} else {
		keep(err)
	}
	up := c.NewUploader(UploaderOptions{PartSize: MinPartSize, Concurrency: 1})
	keep(up.Upload(ctx, key+"/data", Bytes([]byte("object"))))
	big := make([]byte, MinPartSize+1)
	keep(up.Upload(ctx, key+"/big", Bytes(big)))
	u, err := c.StartMultipart(ctx, key+"/mp")
	keep(err)
	if u.ID == "" {
		u = Upload{Key: key + "/mp", ID: "no-such-upload"}
	}
	p, err := c.UploadPart(ctx, u, 1, Bytes([]byte("part")))
	keep(err)
	_, err = c.ListParts(ctx, u)
	keep(err)
	keep(c.CompleteMultipart(ctx, u, []Part{p}))
	return errs
}

// TestSSECHeadersOnEveryRequest: with a customer key, every request on an
// object carries the key and its MD5 — writes, parts, listing and
// completing an upload, GET, ranged GET, HEAD — and no error names the
// key. (The round trip over TLS is TestSSECRoundTripOverTLS.)
func TestSSECHeadersOnEveryRequest(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	c, requests := recorded(t, Options{SSE: SSE{CustomerKey: key}})
	errs := everyOperation(context.Background(), c, "ssec")
	b64 := base64.StdEncoding.EncodeToString(key)
	sum := md5.Sum(key)
	ops := map[string]bool{}
	for _, r := range requests() {
		if r.op == "POST ?delete" || r.op == "DELETE ?uploadId" { // aborts need no key
			continue
		}
		ops[r.op] = true
		if r.header.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "AES256" ||
			r.header.Get("X-Amz-Server-Side-Encryption-Customer-Key") != b64 ||
			r.header.Get("X-Amz-Server-Side-Encryption-Customer-Key-Md5") != base64.StdEncoding.EncodeToString(sum[:]) {
			t.Errorf("%s: no SSE-C key sent", r.op)
		}
		if r.header.Get("X-Amz-Server-Side-Encryption") != "" {
			t.Errorf("%s: SSE-C with x-amz-server-side-encryption", r.op)
		}
	}
	for _, op := range []string{"PUT ?x-id", "GET ?x-id", "HEAD", "POST ?uploads", "PUT ?partNumber", "GET ?uploadId", "POST ?uploadId"} {
		if !ops[op] {
			t.Errorf("no %s request seen: %v", op, ops)
		}
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), b64) || strings.Contains(fmt.Sprintf("%+v", err), b64) {
			t.Fatalf("an error names the key: %v", err)
		}
	}
}

// TestStorageClassOnDataWritesOnly: the class goes with the Uploader's
// PUTs (data objects, packs) and multipart uploads, never with Put
// (manifests, index, markers, lock).
func TestStorageClassOnDataWritesOnly(t *testing.T) {
	for _, class := range []string{"STANDARD_IA", "GLACIER_IR", "INTELLIGENT_TIERING", "ONEZONE_IA"} {
		c, requests := recorded(t, Options{StorageClass: strings.ToLower(class)})
		everyOperation(context.Background(), c, "class")
		creates := 0
		for _, r := range requests() {
			got := r.header.Get("X-Amz-Storage-Class")
			switch r.op {
			case "PUT ?x-id":
				creates++
				if want := map[bool]string{true: class}[r.header.Get("Content-Type") != "application/json"]; got != want {
					t.Errorf("%s: PUT of content type %q has class %q, want %q", class, r.header.Get("Content-Type"), got, want)
				}
			case "POST ?uploads":
				creates++
				if got != class {
					t.Errorf("%s: CreateMultipartUpload has class %q", class, got)
				}
			}
		}
		if creates < 4 {
			t.Fatalf("%s: saw %d creating requests", class, creates)
		}
	}
}

func TestParseSettings(t *testing.T) {
	for _, s := range []string{"GLACIER", "deep_archive"} {
		if _, err := ParseStorageClass(s); err == nil || !strings.Contains(err.Error(), "restored") {
			t.Errorf("%s: %v", s, err)
		}
	}
	if c, err := ParseStorageClass("glacier_ir"); err != nil || c != "GLACIER_IR" {
		t.Errorf("glacier_ir: %q %v", c, err)
	}
	raw := bytes.Repeat([]byte{7}, 32)
	for _, in := range [][]byte{raw, []byte(base64.StdEncoding.EncodeToString(raw) + "\n"), []byte(base64.RawURLEncoding.EncodeToString(raw))} {
		if k, err := ParseCustomerKey(in); err != nil || !bytes.Equal(k, raw) {
			t.Errorf("key %q: %v", in, err)
		}
	}
	if _, err := ParseCustomerKey([]byte("secret-secret")); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("short key: %v", err)
	}
	s := SSE{CustomerKey: raw}
	var log bytes.Buffer
	// Without the time, whose digits may hold a 7.
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{ReplaceAttr: noTime})).Info("x", "sse", s)
	for _, shown := range []string{s.String(), fmt.Sprintf("%v %+v %#v", s, s, s), log.String()} {
		if strings.Contains(shown, "7") || strings.Contains(shown, base64.StdEncoding.EncodeToString(raw)) {
			t.Errorf("the key shows: %s", shown)
		}
	}
	for _, bad := range []SSE{{Mode: "AES256", CustomerKey: raw}, {Mode: "AES256", KMSKeyID: "k"}, {CustomerKey: raw[:16]}, {Mode: "des"}} {
		if _, err := newEncryption(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
