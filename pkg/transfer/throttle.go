package transfer

import (
	"context"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"golang.org/x/time/rate"
)

// throttle is an HTTP client that holds the bytes of request and response
// bodies to a rate. Each direction has one limiter shared by every request,
// so the limit bounds the node's whole S3 traffic however many transfers
// run at once, and a download does not slow a concurrent upload. Headers
// and TLS framing are not counted: bodies are nearly all of the traffic.
type throttle struct {
	next       aws.HTTPClient
	send, recv *rate.Limiter
}

func newThrottle(next aws.HTTPClient, bytesPerSec int64) *throttle {
	burst := burstFor(bytesPerSec)
	return &throttle{
		next: next,
		send: rate.NewLimiter(rate.Limit(bytesPerSec), burst),
		recv: rate.NewLimiter(rate.Limit(bytesPerSec), burst),
	}
}

// burstFor is the step in which bytes are let through: an eighth of a
// second's worth keeps the flow even, 64 KiB keeps the wake-ups few at low
// rates, and 1 MiB keeps a fast link from bursting far over its limit.
func burstFor(bytesPerSec int64) int {
	return int(min(max(bytesPerSec/8, 64<<10), 1<<20))
}

// Do sends req with its body, if any, read through the send limiter and
// returns the response with its body read through the receive limiter.
func (t *throttle) Do(req *http.Request) (*http.Response, error) {
	resp, err := t.next.Do(t.limitRequest(req))
	if err != nil || resp == nil || !hasBody(resp.Body) {
		return resp, err
	}
	resp.Body = &limitedBody{ReadCloser: resp.Body, ctx: req.Context(), lim: t.recv}
	return resp, nil
}

// limitRequest returns a shallow copy of req whose body is throttled. The
// SDK rewinds and rebuilds the request for each retry, so only this
// attempt's body is wrapped; net/http itself may ask GetBody for a fresh
// body to resend on a new connection, and that one must be throttled too.
// ContentLength stays as it is: the wrapper yields exactly the same bytes.
func (t *throttle) limitRequest(req *http.Request) *http.Request {
	if !hasBody(req.Body) {
		return req
	}
	ctx := req.Context()
	out := new(http.Request)
	*out = *req
	out.Body = &limitedBody{ReadCloser: req.Body, ctx: ctx, lim: t.send}
	if req.GetBody != nil {
		out.GetBody = func() (io.ReadCloser, error) {
			b, err := req.GetBody()
			if err != nil || !hasBody(b) {
				return b, err
			}
			return &limitedBody{ReadCloser: b, ctx: ctx, lim: t.send}, nil
		}
	}
	return out
}

// hasBody tells real bodies from the markers net/http gives special
// meaning: a nil or NoBody request body means "nothing to send", which a
// wrapper would hide.
func hasBody(b io.ReadCloser) bool {
	return b != nil && b != http.NoBody
}

// limitedBody lets bytes through as its limiter allows. It waits after
// reading, for what was read, so that no tokens are spent on bytes that
// never come; a Read never returns more than one burst, since the limiter
// refuses to wait for more than that at once.
//
// It has only Read and Close: an io.WriterTo or io.ReaderFrom of the body
// underneath would let io.Copy go around the limiter.
type limitedBody struct {
	io.ReadCloser
	ctx context.Context
	lim *rate.Limiter
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if burst := b.lim.Burst(); len(p) > burst {
		p = p[:burst]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if werr := b.lim.WaitN(b.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
