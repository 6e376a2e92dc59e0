package lock

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// proxied returns a client that reaches MinIO through a fault proxy, and a
// context that ends before the test would hang. maxAttempts (per request,
// 0: the default) keeps tests of failures that outlast the retries short.
func proxied(t *testing.T, maxAttempts ...int) (context.Context, *faultproxy.Proxy, *transfer.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	p, err := faultproxy.New(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	o := transfer.Options{Bucket: "lock", EndpointURL: p.URL}
	if len(maxAttempts) > 0 {
		o.MaxAttempts = maxAttempts[0]
	}
	c, err := transfer.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, p, c
}

// putsOf matches the writes of the lock object.
func putsOf(key string) func(*http.Request) bool {
	return faultproxy.Request(http.MethodPut, "/lock/"+key)
}

// TestAcquireWhoseReplyIsLost: the lock's creation reached S3 but its reply
// did not; the SDK's retry fails If-None-Match against that very write.
// Acquire recognises its own lock instead of reporting the node locked by
// itself ("locked by … pid <own pid>").
func TestAcquireWhoseReplyIsLost(t *testing.T) {
	ctx, p, c := proxied(t)
	key := t.Name() + "/lock.json"
	drop := p.Add(faultproxy.Rule{Match: putsOf(key), Times: 1, Fault: faultproxy.DropReply})
	l, err := Acquire(ctx, c, key, Info{Op: "backup", Backup: "20261125T000000Z.000"}, Options{})
	if err != nil {
		t.Fatalf("Acquire whose reply was lost: %v", err)
	}
	if drop.Applied() != 1 || drop.Seen() != 2 {
		t.Fatalf("proxy saw %d PUTs of the lock (%d replies dropped), want the create and its retry", drop.Seen(), drop.Applied())
	}
	cur, err := Read(ctx, client, key)
	if err != nil || cur == nil || cur.Token != l.Info().Token || cur.PID != os.Getpid() {
		t.Fatalf("lock holds %+v (%v), want ours (token %s)", cur, err, l.Info().Token)
	}
	// The ETag it kept is the stored one: renewing works.
	if err := l.Fence(ctx); err != nil {
		t.Fatalf("Fence after the lost reply: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if cur, err := Read(ctx, client, key); err != nil || cur != nil {
		t.Fatalf("after release: %+v, %v", cur, err)
	}
}

// TestFenceWhoseReplyIsLost: a renewal (If-Match on the last ETag) that
// S3 stored but whose reply was lost: the retry fails its condition against
// the renewal itself. Fence succeeds, keeps the new ETag, and the next
// Fence succeeds too.
func TestFenceWhoseReplyIsLost(t *testing.T) {
	ctx, p, c := proxied(t)
	key := t.Name() + "/lock.json"
	l, err := Acquire(ctx, c, key, Info{Op: "backup"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.WithoutCancel(ctx))
	drop := p.Add(faultproxy.Rule{Match: putsOf(key), Times: 1, Fault: faultproxy.DropReply})
	before := l.Info().Expires
	if err := l.Fence(ctx); err != nil {
		t.Fatalf("Fence whose reply was lost: %v", err)
	}
	if drop.Applied() != 1 || drop.Seen() != 2 {
		t.Fatalf("proxy saw %d PUTs of the lock (%d replies dropped), want the renewal and its retry", drop.Seen(), drop.Applied())
	}
	cur, err := Read(ctx, client, key)
	if err != nil || cur.Token != l.Info().Token || !cur.Expires.Equal(l.Info().Expires) || !cur.Expires.After(before) {
		t.Fatalf("lock holds %+v (%v), want our renewed lease", cur, err)
	}
	if err := l.Fence(ctx); err != nil {
		t.Fatalf("Fence after the one whose reply was lost: %v", err)
	}
	if drop.Seen() != 3 {
		t.Fatalf("proxy saw %d PUTs of the lock, want 3", drop.Seen())
	}
}

// TestTakeoverStillLosesTheLock: recognising our own write never hides
// another run's. After the lock was broken by another run, Fence is ErrLost
// naming the new holder, whether its reply arrives or is lost (the retry
// then reads back the other run's bytes, not ours).
func TestTakeoverStillLosesTheLock(t *testing.T) {
	ctx, p, c := proxied(t)
	key := t.Name() + "/lock.json"
	a, err := Acquire(ctx, c, key, Info{Op: "backup", Host: "node-a"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(ctx, client, key, Info{Op: "purge", Host: "node-b", PID: 4242}, Options{Break: true})
	if err != nil {
		t.Fatalf("break the lock: %v", err)
	}
	defer b.Release(context.WithoutCancel(ctx))
	err = a.Fence(ctx)
	if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "node-b pid 4242") {
		t.Fatalf("Fence after a takeover: %v, want ErrLost naming node-b", err)
	}
	drop := p.Add(faultproxy.Rule{Match: putsOf(key), Times: 1, Fault: faultproxy.DropReply})
	err = a.Fence(ctx)
	if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), "node-b pid 4242") {
		t.Fatalf("Fence after a takeover, its reply lost: %v, want ErrLost naming node-b", err)
	}
	if drop.Applied() != 1 {
		t.Fatalf("the reply was dropped %d times, want 1", drop.Applied())
	}
	if cur, err := Read(ctx, client, key); err != nil || cur.Token != b.Info().Token {
		t.Fatalf("lock holds %+v (%v), want node-b's", cur, err)
	}
}

// TestLostReplyThatCannotBeReadBack: the reply of the lock's write is lost
// and reading the lock back to recognise our own write fails too (503
// after the retries). Whose lock it is is unknown: Acquire fails with a
// plain error, not "locked by" this very run, and Fence with an error that
// is not ErrLost (a renewal retries at the next tick; a commit stops).
func TestLostReplyThatCannotBeReadBack(t *testing.T) {
	ctx, p, c := proxied(t, 2)
	key := t.Name() + "/lock.json"
	p.Add(faultproxy.Rule{Match: putsOf(key), Times: 1, Fault: faultproxy.DropReply})
	reads := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodGet, "/lock/"+key), Times: 2, Fault: faultproxy.Status(503)})
	_, err := Acquire(ctx, c, key, Info{Op: "backup"}, Options{})
	var held *HeldError
	if err == nil || errors.As(err, &held) || reads.Applied() != 2 {
		t.Fatalf("Acquire, reply lost and lock unreadable: %v (%d reads refused); want a plain error", err, reads.Applied())
	}
	t.Logf("Acquire failed as it should: %v", err)

	p.ClearRules()
	_ = client.Delete(ctx, key) // the lock the failed Acquire did write
	l, err := Acquire(ctx, c, key, Info{Op: "backup"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.WithoutCancel(ctx))
	p.Add(faultproxy.Rule{Match: putsOf(key), Times: 1, Fault: faultproxy.DropReply})
	reads = p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodGet, "/lock/"+key), Times: 2, Fault: faultproxy.Status(503)})
	err = l.Fence(ctx)
	if err == nil || errors.Is(err, ErrLost) || reads.Applied() != 2 {
		t.Fatalf("Fence, reply lost and lock unreadable: %v (%d reads refused); want an error that is not ErrLost", err, reads.Applied())
	}
	t.Logf("Fence failed as it should: %v", err)
}

// TestFenceAfterARenewalOfUnknownOutcome: a renewal that S3 stored but
// whose every answer was lost (the reply dropped, the SDK's retries reset
// before they reached S3) fails with a plain error, and the run keeps the
// ETag from before it. The next renewal's If-Match then fails against the
// renewal that did land, whose bytes (an earlier lease) are not the new
// ones: Fence must still see that the lock holds this run's token and go
// on, not report ErrLost naming this very run.
func TestFenceAfterARenewalOfUnknownOutcome(t *testing.T) {
	ctx, p, c := proxied(t, 2)
	key := t.Name() + "/lock.json"
	l, err := Acquire(ctx, c, key, Info{Op: "backup"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.WithoutCancel(ctx))
	p.Add(faultproxy.Rule{Match: putsOf(key), Times: 1, Fault: faultproxy.DropReply})
	p.Add(faultproxy.Rule{Match: putsOf(key), After: 1, Times: 1, Fault: faultproxy.Reset})
	if err := l.Fence(ctx); err == nil || errors.Is(err, ErrLost) {
		t.Fatalf("renewal whose every answer was lost: %v, want a plain error", err)
	}
	if err := l.Fence(ctx); err != nil {
		t.Fatalf("the renewal after it: %v, want success: the lock holds our token", err)
	}
	if cur, err := Read(ctx, client, key); err != nil || cur.Token != l.Info().Token {
		t.Fatalf("lock holds %+v (%v), want ours", cur, err)
	}
}
