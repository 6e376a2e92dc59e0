package preflight

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3bak/s3bak/pkg/preflight/fakeaws"
)

const (
	testAKID   = "AKIDPREFLIGHTTEST"
	testSecret = "preflight/secret/KEY/never-printed"
	testBucket = "my-bucket"
	testHost   = "my-bucket.s3.us-east-1.amazonaws.com"

	defaultPolicy = fakeaws.DefaultPolicy
)

// env is one scenario: fake IMDS, fake EC2 and fake S3 servers (package
// fakeaws, shared with cmd/s3bak's tests of the built binary), and the real
// SDK clients pointed at them. Tests edit the fakes' fields before run.
type env struct {
	imds  *fakeaws.IMDS
	ec2   *fakeaws.EC2
	s3    *fakeaws.S3
	imdsS *httptest.Server
	ec2S  *httptest.Server
	s3S   *httptest.Server // TLS, like S3
	cfg   aws.Config
	// resolve stands in for DNS: the hostname is the real AWS one, the
	// addresses are what the scenario says DNS answers.
	resolve map[string][]netip.Addr
}

// newEnv starts the "everything right" scenario (fakeaws.GatewayEndpointVPC):
// subnet-0priv's own table routes the S3 prefix list to gateway endpoint
// vpce-0s3, the rest to a NAT.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{
		imds:    &fakeaws.IMDS{Meta: fakeaws.InstanceMeta()},
		ec2:     fakeaws.GatewayEndpointVPC(),
		s3:      &fakeaws.S3{Buckets: map[string]string{testBucket: "us-east-1"}},
		resolve: map[string][]netip.Addr{testHost: addrs("52.216.5.5", "54.231.1.1")},
	}
	e.imdsS = httptest.NewServer(e.imds)
	e.ec2S = httptest.NewServer(e.ec2)
	e.s3S = httptest.NewTLSServer(e.s3)
	t.Cleanup(e.imdsS.Close)
	t.Cleanup(e.ec2S.Close)
	t.Cleanup(e.s3S.Close)
	e.cfg = aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(testAKID, testSecret, ""),
		RetryMaxAttempts: 1,
	}
	return e
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// s3Client builds the client a backup would use for AWS: its endpoint
// resolver still names the real AWS host (which the dns check judges and the
// Host header carries), but its transport dials the fake whatever the host.
// It stays the SDK's buildable client, and trusts the fake's certificate,
// which names example.com.
func (e *env) s3Client(fns ...func(*s3.Options)) *s3.Client {
	tlsCfg := e.s3S.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsCfg.ServerName = "example.com"
	addr := e.s3S.Listener.Addr().String()
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil
		tr.TLSClientConfig = tlsCfg
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	all := append([]func(*s3.Options){func(o *s3.Options) { o.HTTPClient = hc }}, fns...)
	return s3.NewFromConfig(e.cfg, all...)
}

func (e *env) ec2Client() *ec2.Client {
	return ec2.NewFromConfig(e.cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(e.ec2S.URL) })
}

func imdsClient(endpoint string) *imds.Client {
	return imds.New(imds.Options{
		Endpoint:       endpoint,
		EnableFallback: aws.FalseTernary,
		Retryer:        retry.AddWithMaxAttempts(retry.NewStandard(), 1),
	})
}

func (e *env) options() Options {
	return Options{
		Bucket:  testBucket,
		AWS:     e.cfg,
		S3:      e.s3Client(),
		EC2:     e.ec2Client(),
		IMDS:    imdsClient(e.imdsS.URL),
		Resolve: e.resolve,
		// Never real DNS: a host missing from resolve fails as not found.
		Resolver: mapResolver{},
	}
}

// run runs preflight with the scenario's options, edited by fns, and logs the
// table so a failing test shows the whole report.
func (e *env) run(t *testing.T, fns ...func(*Options)) *Report {
	t.Helper()
	o := e.options()
	for _, fn := range fns {
		fn(&o)
	}
	rep := Run(context.Background(), o)
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + b.String())
	return rep
}

// want asserts one check's status and that its detail or hint says each of
// the given phrases.
func want(t *testing.T, rep *Report, id string, st Status, phrases ...string) {
	t.Helper()
	c, ok := rep.Check(id)
	if !ok {
		t.Fatalf("report has no %s check", id)
	}
	if c.Status != st {
		t.Errorf("%s: status %s, want %s (detail: %s)", id, c.Status, st, c.Detail)
	}
	for _, p := range phrases {
		if !strings.Contains(c.Detail+" | "+c.Hint, p) {
			t.Errorf("%s: detail %q / hint %q does not mention %q", id, c.Detail, c.Hint, p)
		}
	}
}

func wantVerdict(t *testing.T, rep *Report, v Verdict, exit int) {
	t.Helper()
	if rep.Verdict != v || rep.ExitCode() != exit {
		t.Errorf("verdict %s (exit %d), want %s (exit %d)", rep.Verdict, rep.ExitCode(), v, exit)
	}
}

func pathFor(t *testing.T, rep *Report, addr string) Path {
	t.Helper()
	for _, p := range rep.Paths {
		if p.Addr == netip.MustParseAddr(addr) {
			return p
		}
	}
	t.Fatalf("no path for %s", addr)
	return Path{}
}
