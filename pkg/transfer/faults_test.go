package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/faultproxy"
)

// proxied returns a client that reaches MinIO through a fault proxy.
func proxied(t *testing.T) (*faultproxy.Proxy, *Client) {
	t.Helper()
	p, err := faultproxy.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c, err := New(context.Background(), Options{Bucket: "transfer", EndpointURL: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// TestFlippedBitIsErrChecksum: the SDK checks a whole-object GET against
// the checksum stored with the object, and Get reports a mismatch as
// ErrChecksum (damaged bytes, not a broken connection). A ranged GET has no
// such check: its reader relies on its own checksums.
func TestFlippedBitIsErrChecksum(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, c := proxied(t)
	data := make([]byte, 100000)
	rand.Read(data)
	key := "faults/flipped"
	if err := c.PutBytes(ctx, key, data, ""); err != nil {
		t.Fatal(err)
	}
	p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodGet, key), Fault: faultproxy.FlipBit})
	_, err := c.GetBytes(ctx, key, 1<<20)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("whole GET with a flipped bit: %v, want ErrChecksum (did the SDK change its checksum error?)", err)
	}
	body, err := c.Get(ctx, key, 10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || len(got) != 1000 || bytes.Equal(got, data[10:1010]) {
		t.Fatalf("ranged GET with a flipped bit: %d bytes, %v; want the damaged bytes, unchecked", len(got), err)
	}
}

// TestConditionalPutWhoseReplyIsLost: the server stored a conditional
// write whose reply never arrived; the SDK's retry fails its condition
// against that very write (412), and Put recognises its own bytes and
// succeeds with their ETag. Another writer's object still is ErrExists.
func TestConditionalPutWhoseReplyIsLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, c := proxied(t)
	key := "faults/conditional"
	drop := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodPut, key), Times: 1, Fault: faultproxy.DropReply})
	etag, err := c.Put(ctx, key, []byte("first"), "", Cond{IfAbsent: true})
	if err != nil {
		t.Fatalf("create whose reply was lost: %v", err)
	}
	if drop.Applied() != 1 || drop.Seen() != 2 {
		t.Fatalf("proxy saw %d PUTs (%d replies dropped), want the write and its retry", drop.Seen(), drop.Applied())
	}
	if got, cur, err := c.GetSmall(ctx, key, 100); err != nil || string(got) != "first" || cur != etag {
		t.Fatalf("object %q ETag %s (%v); want ours, ETag %s", got, cur, err, etag)
	}

	p.ClearRules()
	drop = p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodPut, key), Times: 1, Fault: faultproxy.DropReply})
	etag2, err := c.Put(ctx, key, []byte("second"), "", Cond{IfMatch: etag})
	if err != nil {
		t.Fatalf("replace whose reply was lost: %v", err)
	}
	if _, cur, _ := c.GetSmall(ctx, key, 100); cur != etag2 || etag2 == etag {
		t.Fatalf("ETag %s after the replace, Put said %s (before: %s)", cur, etag2, etag)
	}
	if drop.Applied() != 1 || drop.Seen() != 2 {
		t.Fatalf("proxy saw %d PUTs (%d replies dropped), want the replace and its retry", drop.Seen(), drop.Applied())
	}

	// Someone else's write: the condition fails, the bytes differ.
	if err := c.PutBytes(ctx, key, []byte("theirs"), ""); err != nil {
		t.Fatal(err)
	}
	p.ClearRules()
	p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodPut, key), Times: 1, Fault: faultproxy.DropReply})
	if _, err := c.Put(ctx, key, []byte("third"), "", Cond{IfMatch: etag2}); !errors.Is(err, ErrExists) {
		t.Fatalf("replace of another writer's object: %v, want ErrExists", err)
	}
}

// TestReplyCutShortIsRetried: a reply whose body ends early (the
// connection died after the status line) is retried like a connection that
// failed, for the replies the SDK reads (here CreateMultipartUpload's and a
// listing's), instead of failing the backup with "unexpected EOF".
func TestReplyCutShortIsRetried(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, c := proxied(t)
	create := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodPost, "faults/cut"), Times: 1, Fault: faultproxy.CutBody})
	u, err := c.StartMultipart(ctx, "faults/cut")
	if err != nil {
		t.Fatalf("create whose reply was cut short: %v", err)
	}
	defer c.Abort(context.WithoutCancel(ctx), u)
	if create.Applied() != 1 || create.Seen() != 2 {
		t.Fatalf("proxy saw %d creates (%d cut), want the create and its retry", create.Seen(), create.Applied())
	}
	list := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodGet, ""), Times: 1, Fault: faultproxy.CutBody})
	if _, err := c.ListParts(ctx, u); err != nil {
		t.Fatalf("listing whose reply was cut short: %v", err)
	}
	if list.Applied() != 1 {
		t.Fatalf("the listing's reply was cut %d times, want once", list.Applied())
	}
}
