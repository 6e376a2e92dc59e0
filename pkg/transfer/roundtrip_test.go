package transfer

import (
	"context"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/faultproxy"
)

// RoundTrip is the shortest request's time: about nothing next to MinIO,
// at least the delay of a proxy that holds every request for 40 ms.
func TestRoundTripIsTheBucketsDistance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const far = 40 * time.Millisecond
	near := client(t, "")
	p, distant := proxied(t)
	p.Add(faultproxy.Rule{Fault: faultproxy.Delay(far)})
	for _, c := range []*Client{near, distant} {
		if got := c.RoundTrip(); got != 0 {
			t.Fatalf("round trip %s before any request, want 0", got)
		}
		if err := c.PutBytes(ctx, "roundtrip/probe", []byte("x"), ""); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := c.Head(ctx, "roundtrip/probe"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := distant.RoundTrip(); got < far {
		t.Errorf("round trip through a proxy %s away: %s", far, got)
	}
	if got := near.RoundTrip(); got <= 0 || got >= far {
		t.Errorf("round trip to MinIO on loopback: %s, want above 0 and below %s", got, far)
	}
}
