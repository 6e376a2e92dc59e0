package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/testfixture"
)

// TestMaxRate moves 12 MiB up and 12 MiB down at the same time through a
// client limited to 3 MiB/s, several requests at once in each direction,
// and wants each direction within 15% of the limit. A limiter per request
// would be several times too fast; one limiter for both directions, half
// as fast.
func TestMaxRate(t *testing.T) {
	const (
		limit = 3 << 20
		size  = 12 << 20
		parts = 4 // ranged GETs at once
	)
	ctx := context.Background()
	data := make([]byte, size)
	rand.Read(data)
	if err := uploadStream(ctx, client(t, ""), "rate/down", bytes.NewReader(data), MinPartSize, 3); err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{Bucket: "transfer", MaxRate: limit})
	if err != nil {
		t.Fatal(err)
	}

	var up, down time.Duration
	var g errgroup.Group
	g.Go(func() error {
		start := time.Now()
		// Parts in flight at once, each a request of its own.
		err := uploadStream(ctx, c, "rate/up", bytes.NewReader(data), MinPartSize, 3)
		up = time.Since(start)
		return err
	})
	g.Go(func() error {
		start := time.Now()
		err := getRanges(ctx, c, "rate/down", data, parts)
		down = time.Since(start)
		return err
	})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	checkRate(t, "upload", size, up, limit)
	checkRate(t, "download", size, down, limit)

	got, err := client(t, "").GetBytes(ctx, "rate/up", size)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the throttled upload reads back as %d bytes (err %v), want the %d sent", len(got), err, size)
	}
}

// getRanges reads key in n ranges at once and compares them with want.
func getRanges(ctx context.Context, c *Client, key string, want []byte, n int) error {
	var g errgroup.Group
	step := int64(len(want) / n)
	for i := range int64(n) {
		g.Go(func() error {
			off := i * step
			body, err := c.Get(ctx, key, off, step)
			if err != nil {
				return err
			}
			defer body.Close()
			got, err := io.ReadAll(body)
			if err != nil {
				return fmt.Errorf("read %s at %d: %w", key, off, err)
			}
			if !bytes.Equal(got, want[off:off+step]) {
				return fmt.Errorf("%s at %d: wrong bytes", key, off)
			}
			return nil
		})
	}
	return g.Wait()
}

func checkRate(t *testing.T, what string, n int64, d time.Duration, limit float64) {
	t.Helper()
	got := float64(n) / d.Seconds()
	t.Logf("%s: %d bytes in %s: %.2f MiB/s, limit %.2f MiB/s", what, n, d.Round(time.Millisecond), got/(1<<20), limit/(1<<20))
	// The limit is a ceiling, and load only ever slows a transfer: the
	// ceiling is checked tightly. The floor only catches a throttle that
	// holds back far more than asked; a busy 2-core machine under the race
	// detector may be slow for reasons of its own.
	if got > 1.15*limit {
		t.Errorf("%s at %.2f MiB/s, over the limit of %.2f MiB/s (+15%%)", what, got/(1<<20), limit/(1<<20))
	}
	if got < 0.25*limit {
		t.Errorf("%s at %.2f MiB/s, under a quarter of the limit of %.2f MiB/s", what, got/(1<<20), limit/(1<<20))
	}
}

// doFunc records what the throttle hands on; it answers with canned
// responses, not S3's: the wire is TestMaxRate's business.
type doFunc func(*http.Request) (*http.Response, error)

func (f doFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// TestThrottleKeepsRequests: the throttle must not change what net/http
// and the SDK rely on: nil and NoBody mean no body, ContentLength stays,
// GetBody yields a throttled copy, and the caller's request is untouched.
func TestThrottleKeepsRequests(t *testing.T) {
	const limit = 1 << 20
	var seen *http.Request
	respBody := io.NopCloser(bytes.NewReader(make([]byte, 4*burstFor(limit))))
	th := newThrottle(doFunc(func(r *http.Request) (*http.Response, error) {
		seen = r
		return &http.Response{StatusCode: 200, Body: respBody}, nil
	}), limit)

	for _, body := range []io.ReadCloser{nil, http.NoBody} {
		req, _ := http.NewRequest(http.MethodHead, "http://example.invalid/k", nil)
		req.Body = body
		if _, err := th.Do(req); err != nil {
			t.Fatal(err)
		}
		if seen.Body != body {
			t.Errorf("body %v became %T", body, seen.Body)
		}
	}

	payload := []byte("part of an object")
	req, _ := http.NewRequest(http.MethodPut, "http://example.invalid/k", bytes.NewReader(payload))
	orig := req.Body
	resp, err := th.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if req.Body != orig {
		t.Error("the caller's request was changed")
	}
	if _, ok := seen.Body.(*limitedBody); !ok || seen.ContentLength != int64(len(payload)) {
		t.Errorf("sent body %T with length %d, want a limitedBody of %d", seen.Body, seen.ContentLength, len(payload))
	}
	if b, _ := io.ReadAll(seen.Body); !bytes.Equal(b, payload) {
		t.Errorf("sent %q, want %q", b, payload)
	}
	again, err := seen.GetBody()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := again.(*limitedBody); !ok {
		t.Errorf("GetBody gave %T, want a limitedBody", again)
	}
	if b, _ := io.ReadAll(again); !bytes.Equal(b, payload) {
		t.Errorf("GetBody's body is %q, want %q", b, payload)
	}

	buf := make([]byte, 3*burstFor(limit))
	if n, err := resp.Body.Read(buf); err != nil || n != burstFor(limit) {
		t.Errorf("a read of %d bytes returned %d (%v), want one burst of %d", len(buf), n, err, burstFor(limit))
	}
}

func TestBurstFor(t *testing.T) {
	for _, tc := range []struct{ rate, want int64 }{
		{1 << 10, 64 << 10}, {3 << 20, 384 << 10}, {200 << 20, 1 << 20},
	} {
		if got := burstFor(tc.rate); int64(got) != tc.want {
			t.Errorf("burstFor(%d) = %d, want %d", tc.rate, got, tc.want)
		}
	}
}

// TestThrottledClientIsTheSDKs: with a rate limit, the HTTP client under
// the throttle and the I/O watchdog is still the SDK's BuildableClient with AWS_CA_BUNDLE
// applied, and its pool keeps an idle connection for every request that
// may be in flight.
func TestThrottledClientIsTheSDKs(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", writeCA(t))
	cfg, err := LoadAWSConfig(context.Background(), Options{MaxConns: 64, MaxRate: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	th, ok := cfg.HTTPClient.(*throttle)
	if !ok {
		t.Fatalf("HTTP client %T, want the throttle", cfg.HTTPClient)
	}
	wd, ok := th.next.(*watchdog)
	if !ok {
		t.Fatalf("under the throttle %T, want the I/O watchdog", th.next)
	}
	b, ok := wd.next.(*awshttp.BuildableClient)
	if !ok {
		t.Fatalf("under the watchdog %T, want *awshttp.BuildableClient", wd.next)
	}
	tr := b.GetTransport()
	if tr.MaxIdleConnsPerHost < 64 {
		t.Errorf("MaxIdleConnsPerHost %d, want at least MaxConns (64)", tr.MaxIdleConnsPerHost)
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs == nil {
		t.Error("AWS_CA_BUNDLE was not applied")
	}
}

func writeCA(t *testing.T) string {
	t.Helper()
	p, err := testfixture.CABundle(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
