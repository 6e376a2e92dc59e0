package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// DefaultIOTimeout is how long a request may move no byte before it is
// given up and retried: long enough for a busy server's slowest honest
// answer, short enough that a dead connection costs minutes, not hours.
const DefaultIOTimeout = 2 * time.Minute

// StallError is a request that moved no byte, in either direction, for the
// I/O timeout: a half-open connection, a black-holed route, a server
// stopped mid-answer. It is a network timeout, so the SDK's retryer sends
// the request again, and restore's body reads retry it too.
type StallError struct {
	Method, URL string
	Phase       string // "sending the request", "waiting for the answer", "reading the answer"
	After       time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s %s: no byte moved for %s while %s (the connection or the server stalled)",
		e.Method, e.URL, e.After, e.Phase)
}

// Timeout and Temporary make it a net.Error the SDK retries.
func (e *StallError) Timeout() bool   { return true }
func (e *StallError) Temporary() bool { return true }

// watchdog cancels a request that moves no byte for timeout: the request
// body being sent, the wait for the answer, and the answer's body being
// read all count, and every byte that moves starts the clock again. A
// deadline on the whole request would fail a slow honest transfer of a
// large part; this fails only a stalled one.
type watchdog struct {
	next    aws.HTTPClient
	timeout time.Duration
}

func newWatchdog(next aws.HTTPClient, timeout time.Duration) *watchdog {
	return &watchdog{next: next, timeout: timeout}
}

func (w *watchdog) Do(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	d := &dog{cancel: cancel, timeout: w.timeout, stall: &StallError{
		Method: req.Method, URL: redactURL(req), After: w.timeout, Phase: "sending the request",
	}}
	d.timer = time.AfterFunc(w.timeout, d.fire)
	out := req.WithContext(ctx)
	if !hasBody(req.Body) {
		d.phase("waiting for the answer")
	} else {
		out.Body = &dogBody{ReadCloser: req.Body, d: d}
		if req.GetBody != nil {
			getBody := req.GetBody
			out.GetBody = func() (io.ReadCloser, error) {
				b, err := getBody()
				if err != nil {
					return nil, err
				}
				return &dogBody{ReadCloser: b, d: d}, nil
			}
		}
	}
	resp, err := w.next.Do(out)
	if err != nil {
		d.stop()
		if se := d.fired(); se != nil {
			return nil, se
		}
		return nil, err
	}
	d.phase("reading the answer")
	d.kick()
	if !hasBody(resp.Body) {
		d.stop()
		return resp, nil
	}
	resp.Body = &dogBody{ReadCloser: resp.Body, d: d, closeStops: true}
	return resp, nil
}

// redactURL is the request's URL without its query: presigned parameters
// would carry a signature, and the path names the object well enough.
func redactURL(req *http.Request) string {
	u := *req.URL
	u.RawQuery, u.User = "", nil
	return u.String()
}

type dog struct {
	cancel  context.CancelCauseFunc
	timeout time.Duration
	timer   *time.Timer

	mu      sync.Mutex
	stall   *StallError
	didFire bool
}

func (d *dog) fire() {
	d.mu.Lock()
	d.didFire = true
	se := *d.stall
	d.mu.Unlock()
	d.cancel(&se)
}

func (d *dog) kick() { d.timer.Reset(d.timeout) }

func (d *dog) stop() {
	d.timer.Stop()
	d.cancel(nil)
}

func (d *dog) phase(p string) {
	d.mu.Lock()
	d.stall.Phase = p
	d.mu.Unlock()
}

func (d *dog) fired() *StallError {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.didFire {
		return nil
	}
	se := *d.stall
	return &se
}

// dogBody kicks the watchdog on every byte it moves; the request body's
// last byte moves the phase to waiting for the answer.
type dogBody struct {
	io.ReadCloser
	d          *dog
	closeStops bool
}

func (b *dogBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.d.kick()
	}
	if errors.Is(err, io.EOF) {
		if b.closeStops {
			b.d.stop() // the answer is all here
		} else {
			b.d.phase("waiting for the answer")
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if se := b.d.fired(); se != nil {
			return n, se
		}
	}
	return n, err
}

func (b *dogBody) Close() error {
	if b.closeStops {
		b.d.stop()
	}
	return b.ReadCloser.Close()
}
