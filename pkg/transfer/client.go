// Package transfer is s3bak's side of S3: one client built from the
// standard AWS configuration, and the few operations the rest of s3bak
// needs. It is the only package that moves data through S3; preflight,
// which inspects how this very client reaches the bucket (its endpoint
// resolution, its credentials' source, the EC2 network it sits in), gets
// the SDK client and configuration through Client.SDK, and reads only.
package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Options say how to reach the bucket. Everything left empty comes from the
// standard AWS configuration: environment, shared config and credentials
// files, profile, and the EC2 instance role through IMDSv2.
type Options struct {
	Bucket      string
	Region      string
	Profile     string
	EndpointURL string // a custom S3 endpoint (MinIO, …); AWS_ENDPOINT_URL_S3 works too
	// PathStyle forces path-style addressing; it is on by itself for custom endpoints.
	PathStyle bool
	// ChecksumCalculation is "when_supported" (the SDK default: a CRC on
	// every upload) or "when_required", for S3-compatible stores that reject
	// the SDK's request checksums.
	ChecksumCalculation string
	// MaxConns sizes the connection pool; it should be at least the number
	// of requests in flight.
	MaxConns int
	// MaxAttempts per request, retries included (default DefaultMaxAttempts:
	// a minute or two of S3 trouble must not fail a multi-hour backup).
	MaxAttempts int
	// IOTimeout gives up a request that moves no byte for this long, and
	// retries it (default DefaultIOTimeout; negative: never).
	IOTimeout time.Duration
	// MaxRate limits the bytes of request bodies sent, and separately of
	// response bodies received, per second, over all requests of the
	// client; 0 is unlimited.
	MaxRate int64
	// SSE encrypts every object written (data, packs, manifests, index,
	// markers, the lock) and, for SSE-C, sends the key with every read.
	SSE SSE
	// StorageClass is for data objects and packs only (Uploader and
	// StartMultipart); "" is the bucket's default. See ParseStorageClass.
	StorageClass string
	// Retention protects data objects, packs and the small objects it
	// names (manifests) with S3 Object Lock; the zero value is none.
	Retention Retention
}

// Client is an S3 client bound to one bucket.
type Client struct {
	s3     *s3.Client
	aws    aws.Config
	Bucket string
	// wireChecksum asks S3 to check a CRC32C of every upload.
	wireChecksum bool
	profile      string // Options.Profile, for messages
	enc          encryption
	storageClass types.StorageClass // data objects and packs
	ret          *retention         // nil: no Object Lock retention asked
	rtt          *roundTrips
}

// New loads the AWS configuration and returns a client for o.Bucket.
func New(ctx context.Context, o Options) (*Client, error) {
	if o.Bucket == "" {
		return nil, errors.New("no bucket: set --bucket or S3BAK_BUCKET")
	}
	enc, err := newEncryption(o.SSE)
	if err != nil {
		return nil, err
	}
	class, err := ParseStorageClass(o.StorageClass)
	if err != nil {
		return nil, err
	}
	ret, err := newRetention(o.Retention)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadAWSConfig(ctx, o)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = bucketRegion(ctx, cfg, o)
	}
	wire := cfg.RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired
	rtt := &roundTrips{}
	cli := s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.APIOptions = append(so.APIOptions, rtt.middleware)
		if o.EndpointURL != "" {
			so.BaseEndpoint = aws.String(o.EndpointURL)
		}
		// Custom endpoints (MinIO and the like) rarely serve
		// virtual-hosted buckets; AWS itself wants virtual-hosted.
		if o.PathStyle || so.BaseEndpoint != nil {
			so.UsePathStyle = true
		}
		// Multipart objects have no whole-object checksum to validate on
		// GET; the SDK would log a warning for each one. s3bak checks
		// every byte against its own SHA-256 anyway.
		so.DisableLogOutputChecksumValidationSkipped = true
		// The SDK sends "Expect: 100-continue" with every PUT over 2 MB
		// and waits for the server's go-ahead before the body: a round
		// trip more for every part and large object (20 ms each through
		// the bench's network proxy, a third of a part's time at 80 MB/s).
		// It saves sending a body the server would refuse, which a backup's
		// requests, signed and to a bucket it checked, rarely are.
		so.ContinueHeaderThresholdBytes = -1
		if wire {
			so.APIOptions = append(so.APIOptions, unsignedPayload)
		}
	})
	return &Client{s3: cli, aws: cfg, Bucket: o.Bucket, wireChecksum: wire, profile: o.Profile,
		enc: enc, storageClass: class, ret: ret, rtt: rtt}, nil
}

// SDK returns the SDK client and the configuration it was built from, for
// preflight to inspect how this client reaches the bucket. Everything that
// reads or writes objects goes through Client's own methods.
func (c *Client) SDK() (*s3.Client, aws.Config) { return c.s3, c.aws }

// LoadAWSConfig loads the standard configuration with s3bak's HTTP client.
// The client is the SDK's BuildableClient, tuned but not replaced, so that
// settings such as AWS_CA_BUNDLE keep working (a hand-built http.Client makes
// the SDK fail with "unsupported transport").
func LoadAWSConfig(ctx context.Context, o Options) (aws.Config, error) {
	conns := max(o.MaxConns, 16)
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second; d.KeepAlive = 30 * time.Second }).
		WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConns = 2 * conns
			t.MaxIdleConnsPerHost = conns
			t.IdleConnTimeout = 90 * time.Second
			t.ResponseHeaderTimeout = 2 * time.Minute // no silent stall on a dead connection
			t.WriteBufferSize = 256 << 10
			t.ReadBufferSize = 256 << 10
		})
	attempts := o.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = attempts
				so.MaxBackoff = maxBackoff
				so.Backoff = equalJitter{max: maxBackoff}
				// The SDK's retry quota (a token bucket shared by every
				// request of the client) fails the whole run after a few
				// dozen retries: 64 transfers in flight spend it in the
				// first seconds of an outage. Each request's own attempts
				// and backoff bound its retries instead.
				so.RateLimiter = ratelimit.None
				so.Retryables = append(so.Retryables, damagedOnTheWay, cutShort)
			})
		}),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	switch strings.ToLower(o.ChecksumCalculation) {
	case "":
	case "when_supported":
		opts = append(opts, config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenSupported))
	case "when_required":
		opts = append(opts, config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired))
	default:
		return aws.Config{}, fmt.Errorf("checksum calculation %q: want when_supported or when_required", o.ChecksumCalculation)
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	// Wrapped only now: loading applies AWS_CA_BUNDLE to the client it is
	// given, and only if that is a *BuildableClient. The S3 client then
	// leaves the wrapper as it is; the connect and TLS timeouts it would set
	// on a BuildableClient for a defaults mode are set here already (the
	// dialer's, and the BuildableClient's own TLS handshake timeout).
	if o.IOTimeout >= 0 {
		cfg.HTTPClient = newWatchdog(cfg.HTTPClient, cmp.Or(o.IOTimeout, DefaultIOTimeout))
	}
	if o.MaxRate > 0 {
		cfg.HTTPClient = newThrottle(cfg.HTTPClient, o.MaxRate)
	}
	return cfg, nil
}

// DefaultMaxAttempts and maxBackoff size the retries for minutes of
// trouble, not seconds: the waits between 12 attempts are at least half of
// 1, 2, 4, 8, 16 and then 30 seconds, so a request gives up only after more
// than 100 s (at most 211 s) of failures — an S3 brown-out or a MinIO
// restart is ridden out.
const (
	DefaultMaxAttempts = 12
	maxBackoff         = 30 * time.Second
)

// equalJitter waits between half and all of an exponential backoff: full
// jitter (the SDK's) may retry at once again and again, so the time a
// request survives would be left to chance.
type equalJitter struct{ max time.Duration }

func (j equalJitter) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	d := min(j.max, time.Second<<min(max(attempt-1, 0), 16))
	return d/2 + rand.N(d/2+1), nil
}

// damagedOnTheWay retries a request whose body the server received with
// other bytes than were sent (its checksum does not match): the body is
// sent again from the same buffer. The SDK does not retry these by itself.
var damagedOnTheWay = retry.RetryableErrorCode{Codes: map[string]struct{}{
	"BadDigest":                   {}, // AWS, for Content-MD5 and x-amz-checksum-*
	"XAmzContentChecksumMismatch": {}, // MinIO, x-amz-checksum-*
	"XAmzContentSHA256Mismatch":   {}, // AWS and MinIO, a signed payload hash
}}

// cutShort retries a request whose reply ended before its body did (the
// connection died after the status line): the SDK retries a connection
// that fails, not a reply it was reading. The request may have been acted
// on, as with any lost reply: the callers that write already take a retry
// of their own write for what it is (Put, Complete).
var cutShort = retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
})

// bucketRegion asks S3 where the bucket lives when nothing configured a
// region, so that a node needs no region setting to back up. Custom
// endpoints and failures fall back to us-east-1, which every S3-compatible
// store accepts for signing.
func bucketRegion(ctx context.Context, cfg aws.Config, o Options) string {
	const fallback = "us-east-1"
	if o.EndpointURL != "" {
		return fallback
	}
	probe := cfg.Copy()
	probe.Region = fallback
	cli := s3.NewFromConfig(probe)
	if cli.Options().BaseEndpoint != nil {
		return fallback
	}
	region, err := headBucketRegion(ctx, cli, o.Bucket)
	if err != nil || region == "" {
		return fallback
	}
	return region
}

// headBucketRegion asks S3 where bucket lives: HEAD bucket, unsigned (no
// credentials are needed to learn a bucket's region), whose answer names
// the region in x-amz-bucket-region — on a 200, and also on the 301 of a
// bucket in another region and the 403 of a bucket of another account.
// A 404, or an answer without the header, is an error.
func headBucketRegion(ctx context.Context, cli *s3.Client, bucket string) (string, error) {
	out, err := cli.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}, func(o *s3.Options) {
		o.Credentials = nil
	})
	if err == nil {
		if r := aws.ToString(out.BucketRegion); r != "" {
			return r, nil
		}
		return "", fmt.Errorf("HEAD bucket %s: no region in the answer", bucket)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		if r := re.Response.Header.Get("X-Amz-Bucket-Region"); r != "" {
			return r, nil
		}
	}
	return "", err
}
