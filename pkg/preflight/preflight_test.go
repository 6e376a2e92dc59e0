package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestGatewayEndpointPass(t *testing.T) {
	e := newEnv(t)
	rep := e.run(t)
	wantVerdict(t, rep, VerdictPass, 0)
	want(t, rep, CheckCredentials, StatusPass, "StaticCredentials")
	want(t, rep, CheckIMDS, StatusPass, "i-0abc123", "subnet-0priv", "vpc-0abc", "10.0.0.0/16")
	want(t, rep, CheckBucket, StatusPass, "200", "us-east-1")
	want(t, rep, CheckRegion, StatusPass)
	want(t, rep, CheckDNS, StatusPass, testHost, "52.216.5.5", "54.231.1.1", "--resolve")
	want(t, rep, CheckRoute, StatusPass, "rtb-0priv (explicitly associated", "pl-63a5400a", "routed to vpce-0s3")
	want(t, rep, CheckEndpoint, StatusPass, "S3 gateway endpoint vpce-0s3")
	want(t, rep, CheckPolicy, StatusWarn, "default full-access", "aws:SourceVpce")
	want(t, rep, CheckCost, StatusPass)
	f := rep.Facts
	if f.RouteTableID != "rtb-0priv" || len(f.EndpointIDs) != 1 || f.EndpointIDs[0] != "vpce-0s3" || f.Host != testHost {
		t.Errorf("facts = %+v", f)
	}
	for _, p := range rep.Paths {
		if p.Kind != kindGatewayEndpoint || p.Target != "vpce-0s3" {
			t.Errorf("path %+v", p)
		}
	}
}

func TestReportOutputNeverShowsSecrets(t *testing.T) {
	e := newEnv(t)
	rep := e.run(t)
	var js, table bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{js.String(), table.String()} {
		for _, secret := range []string{testSecret, testAKID, "preflight/secret", "AKIDPRE"} {
			if strings.Contains(out, secret) {
				t.Errorf("output shows %q", secret)
			}
		}
	}
	var doc struct {
		Verdict string `json:"verdict"`
		Checks  []struct{ ID, Status, Detail string }
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	ids := []string{CheckCredentials, CheckIMDS, CheckBucket, CheckPermissions, CheckEncryption, CheckObjectLock, CheckRegion, CheckDNS, CheckRoute, CheckEndpoint, CheckPolicy, CheckCost}
	if doc.Verdict != "pass" || len(doc.Checks) != len(ids) {
		t.Fatalf("json = %s", js.String())
	}
	for i, id := range ids {
		if doc.Checks[i].ID != id || doc.Checks[i].Detail == "" {
			t.Errorf("check %d = %+v, want id %s with a detail", i, doc.Checks[i], id)
		}
	}
	if !strings.Contains(table.String(), "verdict: pass") || !strings.Contains(table.String(), "52.216.5.5") {
		t.Errorf("table:\n%s", table.String())
	}
}

func TestNATOnly(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes = e.ec2.Tables[0].Routes[:2] // local + 0.0.0.0/0 → NAT
	e.ec2.Endpoints = nil
	rep := e.run(t, func(o *Options) { o.Estimate = func() int64 { return 100 << 30 } })
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckRoute, StatusFail, "not referenced by any route", "no endpoint route covers it", "0.0.0.0/0",
		"create-vpc-endpoint --vpc-id vpc-0abc --service-name com.amazonaws.us-east-1.s3 --route-table-ids rtb-0priv")
	want(t, rep, CheckEndpoint, StatusFail, "would traverse NAT gateway nat-0123")
	want(t, rep, CheckCost, StatusWarn, "nat-0123", "100.0 GB", "$4.50")
	want(t, rep, CheckPolicy, StatusNA)
}

func TestNATCostDefaultPricePerGB(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes = e.ec2.Tables[0].Routes[:2]
	rep := e.run(t)
	want(t, rep, CheckCost, StatusWarn, "every GB costs $0.045")
}

func TestBucketInAnotherRegion(t *testing.T) {
	e := newEnv(t)
	e.s3.Buckets["west-bucket"] = "us-west-2"
	westHost := "west-bucket.s3.us-west-2.amazonaws.com"
	e.resolve[westHost] = addrs("52.92.1.1")

	t.Run("client set to the bucket's region", func(t *testing.T) {
		e.cfg.Region = "us-west-2"
		defer func() { e.cfg.Region = "us-east-1" }()
		rep := e.run(t, func(o *Options) { o.Bucket = "west-bucket" })
		wantVerdict(t, rep, VerdictFail, 1)
		want(t, rep, CheckBucket, StatusPass, "us-west-2")
		want(t, rep, CheckRegion, StatusFail, "us-west-2", "us-east-1", "only serves buckets of its own region")
		want(t, rep, CheckDNS, StatusPass, westHost)
		want(t, rep, CheckRoute, StatusFail, "not in com.amazonaws.us-east-1.s3 (pl-63a5400a)", westHost)
		want(t, rep, CheckEndpoint, StatusFail, "NAT gateway nat-0123")
	})
	t.Run("client set to the VPC's region", func(t *testing.T) {
		e.resolve["west-bucket.s3.us-east-1.amazonaws.com"] = addrs("52.216.5.5")
		rep := e.run(t, func(o *Options) { o.Bucket = "west-bucket" })
		wantVerdict(t, rep, VerdictFail, 1)
		want(t, rep, CheckBucket, StatusFail, "is in us-west-2 but the S3 client is set to us-east-1", "set the S3 region to us-west-2")
		want(t, rep, CheckRegion, StatusFail, "bucket is in us-west-2")
	})
}

func TestBucketForbiddenAndMissing(t *testing.T) {
	e := newEnv(t)
	e.s3.Forbidden = map[string]bool{testBucket: true}
	rep := e.run(t)
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckBucket, StatusFail, "403", "s3:ListBucket")
	want(t, rep, CheckRegion, StatusPass) // S3 names the region even on 403

	e.resolve["nope.s3.us-east-1.amazonaws.com"] = addrs("52.216.5.5")
	rep = e.run(t, func(o *Options) { o.Bucket = "nope" })
	want(t, rep, CheckBucket, StatusFail, "404", "no such bucket")
	want(t, rep, CheckRegion, StatusUnknown)
}

func TestUnauthorizedOperationNamesAction(t *testing.T) {
	for _, action := range []string{"DescribeRouteTables", "GetManagedPrefixListEntries", "DescribeVpcEndpoints"} {
		t.Run(action, func(t *testing.T) {
			e := newEnv(t)
			e.ec2.Deny = map[string]bool{action: true}
			rep := e.run(t)
			wantVerdict(t, rep, VerdictUnknown, 2)
			want(t, rep, CheckRoute, StatusUnknown, "missing IAM permission ec2:"+action, "UnauthorizedOperation")
			want(t, rep, CheckEndpoint, StatusNA)
		})
	}
}

func TestIMDSUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens here now: connection refused, like off EC2

	e := newEnv(t)
	rep := e.run(t, func(o *Options) { o.IMDS = imdsClient(closed) })
	wantVerdict(t, rep, VerdictUnknown, 2)
	want(t, rep, CheckIMDS, StatusUnknown, "not on EC2")
	want(t, rep, CheckBucket, StatusPass)
	want(t, rep, CheckRegion, StatusNA)
	want(t, rep, CheckDNS, StatusPass)
	for _, id := range []string{CheckRoute, CheckEndpoint, CheckPolicy, CheckCost} {
		want(t, rep, id, StatusNA, "IMDS")
	}
	if n := e.ec2.Total(); n != 0 {
		t.Errorf("EC2 was called %d times without an identity", n)
	}
}

func TestIMDSHangs(t *testing.T) {
	done := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(done) }) // runs first: frees the handler so Close can return

	e := newEnv(t)
	rep := e.run(t, func(o *Options) {
		o.IMDS = imdsClient(hang.URL)
		o.IMDSTimeout = 50 * time.Millisecond
	})
	wantVerdict(t, rep, VerdictUnknown, 2)
	want(t, rep, CheckIMDS, StatusUnknown, "50ms")
	want(t, rep, CheckRoute, StatusNA)
}

func TestIMDSTokenWithoutTTLHeader(t *testing.T) {
	e := newEnv(t)
	e.imds.NoTTLHeader = true
	rep := e.run(t)
	wantVerdict(t, rep, VerdictUnknown, 2)
	want(t, rep, CheckIMDS, StatusUnknown, "token")
}

func TestCustomEndpoint(t *testing.T) {
	e := newEnv(t)
	minio := httptest.NewServer(e.s3) // plain HTTP, path style, like MinIO
	t.Cleanup(minio.Close)
	rep := e.run(t, func(o *Options) {
		o.S3 = s3.NewFromConfig(e.cfg, func(so *s3.Options) {
			so.BaseEndpoint = aws.String(minio.URL)
			so.UsePathStyle = true
		})
	})
	wantVerdict(t, rep, VerdictPass, 0)
	want(t, rep, CheckCredentials, StatusPass)
	want(t, rep, CheckBucket, StatusPass)
	for _, id := range []string{CheckIMDS, CheckRegion, CheckDNS, CheckRoute, CheckEndpoint, CheckPolicy, CheckCost} {
		want(t, rep, id, StatusNA, "custom S3 endpoint "+minio.URL)
	}
	if rep.Facts.CustomEndpoint != minio.URL {
		t.Errorf("facts = %+v", rep.Facts)
	}
	if e.imds.Calls() != 0 || e.ec2.Total() != 0 {
		t.Errorf("custom endpoint still asked IMDS (%d) or EC2 (%d)", e.imds.Calls(), e.ec2.Total())
	}

	t.Run("bucket missing still fails", func(t *testing.T) {
		rep := e.run(t, func(o *Options) {
			o.Bucket = "nope"
			o.S3 = s3.NewFromConfig(e.cfg, func(so *s3.Options) { so.BaseEndpoint = aws.String(minio.URL); so.UsePathStyle = true })
		})
		wantVerdict(t, rep, VerdictFail, 1)
		// Probed beside the bucket's check, but reported as what they
		// wait for: one failure, the bucket.
		for _, id := range []string{CheckPermissions, CheckEncryption, CheckObjectLock} {
			want(t, rep, id, StatusNA, "needs the bucket")
		}
	})
}

func TestCredentialsDoNotResolve(t *testing.T) {
	e := newEnv(t)
	e.cfg.Credentials = aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, errors.New("no EC2 IMDS role found")
	})
	rep := e.run(t)
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckCredentials, StatusFail, "no EC2 IMDS role found")
}

type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip" {
		return nil, fmt.Errorf("network %q", network)
	}
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestResolverWhenNoOverride(t *testing.T) {
	e := newEnv(t)
	rep := e.run(t, func(o *Options) {
		o.Resolve = nil
		o.Resolver = mapResolver{testHost: addrs("::ffff:54.231.1.1", "54.231.1.1")}
	})
	wantVerdict(t, rep, VerdictPass, 0)
	want(t, rep, CheckDNS, StatusPass, testHost+" → 54.231.1.1 (DNS)")

	rep = e.run(t, func(o *Options) { o.Resolve = nil; o.Resolver = mapResolver{} })
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckDNS, StatusFail, "no such host")
	want(t, rep, CheckRoute, StatusNA)
}
