package transfer

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/aws/smithy-go/middleware"
)

// roundTrips keeps the shortest round trip of a client's requests: from
// sending one to its reply's headers (and its body, when that is not
// streamed: a few KB for the small requests that set the minimum).
type roundTrips struct {
	min atomic.Int64 // nanoseconds; 0 before the first reply
}

func (r *roundTrips) observe(d time.Duration) {
	for {
		cur := r.min.Load()
		if cur != 0 && cur <= int64(d) || r.min.CompareAndSwap(cur, int64(max(d, 1))) {
			return
		}
	}
}

// middleware times every attempt of every request: it wraps the sending
// and the decoding of the reply, inside the retries.
func (r *roundTrips) middleware(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("s3bak:RoundTrip",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			start := time.Now()
			out, md, err := next.HandleDeserialize(ctx, in)
			if err == nil {
				r.observe(time.Since(start))
			}
			return out, md, err
		}), middleware.Before)
}

// RoundTrip is the shortest round trip of a request this client has made,
// 0 before any: how far away the bucket is, for sizing what is in flight.
func (c *Client) RoundTrip() time.Duration { return time.Duration(c.rtt.min.Load()) }

// NearRoundTrip: a bucket whose requests come back sooner than this is
// near by, a MinIO beside the node rather than S3 a network away (tens of
// milliseconds to a first byte). What is in flight is sized for it: fewer,
// larger requests, which cost the server (sharing the node's CPUs) less.
const NearRoundTrip = 5 * time.Millisecond

// Near tells whether a bucket rtt away is near by. Not measured (0: no
// request yet) counts as far, as S3 is.
func Near(rtt time.Duration) bool { return rtt > 0 && rtt < NearRoundTrip }
