package preflight

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// rendezvous lets n parties each wait until all n have arrived, or until
// its patience runs out: parties that run one after the other never meet.
type rendezvous struct {
	mu      sync.Mutex
	n       int
	arrived map[string]bool
	all     chan struct{}
	missed  []string // who stopped waiting
}

func newRendezvous(n int) *rendezvous {
	return &rendezvous{n: n, arrived: map[string]bool{}, all: make(chan struct{})}
}

func (r *rendezvous) meet(who string) {
	r.mu.Lock()
	if !r.arrived[who] {
		r.arrived[who] = true
		if len(r.arrived) == r.n {
			close(r.all)
		}
	}
	r.mu.Unlock()
	select {
	case <-r.all:
	case <-time.After(2 * time.Second):
		r.mu.Lock()
		r.missed = append(r.missed, who)
		r.mu.Unlock()
	}
}

type meetingResolver struct {
	r    *rendezvous
	next Resolver
}

func (m meetingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	m.r.meet("dns")
	return m.next.LookupNetIP(ctx, network, host)
}

type meetingObjects struct {
	r *rendezvous
	*fakeObjects
}

func (m meetingObjects) Put(ctx context.Context, key string, b []byte, ct string, cond transfer.Cond) (string, error) {
	m.r.meet("permissions")
	return m.fakeObjects.Put(ctx, key, b, ct, cond)
}

type meetingSettings struct {
	r *rendezvous
	fakeSettings
}

func (m meetingSettings) DefaultEncryption(ctx context.Context) (transfer.BucketEncryption, error) {
	m.r.meet("encryption")
	return m.fakeSettings.DefaultEncryption(ctx)
}

func (m meetingSettings) ObjectLockConfig(ctx context.Context) (transfer.ObjectLock, error) {
	m.r.meet("object lock")
	return m.fakeSettings.ObjectLockConfig(ctx)
}

// TestIndependentChecksRunAtOnce: a backup waits for its preflight, so the
// checks that need nothing from each other — the instance identity
// (IMDS), the bucket host's addresses (DNS), the bucket itself, the write
// probe, the bucket's encryption and its Object Lock — are made at once:
// each waits here for the others to have started, which checks made one
// after the other never do.
func TestIndependentChecksRunAtOnce(t *testing.T) {
	e := newEnv(t)
	meet := newRendezvous(6)
	e.s3S.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			meet.meet("bucket")
		}
		e.s3.ServeHTTP(w, r)
	})
	imdsS := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut { // the token: the identity's first request
			meet.meet("imds")
		}
		e.imds.ServeHTTP(w, r)
	}))
	t.Cleanup(imdsS.Close)
	rep := e.run(t, func(o *Options) {
		o.IMDS = imdsClient(imdsS.URL)
		o.IMDSTimeout = 10 * time.Second
		o.Resolver = meetingResolver{meet, mapResolver{testHost: addrs("52.216.5.5")}}
		o.Resolve = nil
		o.Objects = meetingObjects{meet, &fakeObjects{objects: map[string][]byte{}}}
		o.Settings = meetingSettings{r: meet}
	})
	if len(meet.missed) > 0 {
		t.Errorf("checks made one after the other: %v waited for the others in vain", meet.missed)
	}
	wantVerdict(t, rep, VerdictPass, 0)
	var ids []string
	for _, c := range rep.Checks {
		ids = append(ids, c.ID)
	}
	want := []string{CheckCredentials, CheckIMDS, CheckBucket, CheckPermissions, CheckEncryption, CheckObjectLock,
		CheckRegion, CheckDNS, CheckRoute, CheckEndpoint, CheckPolicy, CheckCost}
	if len(ids) != len(want) {
		t.Fatalf("checks %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("checks %v, want %v (the report's order does not depend on which check ends first)", ids, want)
		}
	}
}
