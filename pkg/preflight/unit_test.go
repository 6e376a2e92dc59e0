package preflight

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestParseResolve(t *testing.T) {
	got, err := ParseResolve([]string{
		"My-Bucket.s3.us-east-1.amazonaws.com.=52.216.5.5, 54.231.1.1",
		"my-bucket.s3.us-east-1.amazonaws.com=[2600:1fa0::1]",
		"other=::ffff:10.0.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if a := got[testHost]; !slices.Equal(a, addrs("52.216.5.5", "54.231.1.1", "2600:1fa0::1")) {
		t.Errorf("addrs = %v", a)
	}
	if a := got["other"]; !slices.Equal(a, addrs("10.0.0.1")) {
		t.Errorf("mapped address not unmapped: %v", a)
	}
	for _, bad := range []string{"host", "=1.2.3.4", "host=", "host=not-an-ip", "host=1.2.3.4,"} {
		if _, err := ParseResolve([]string{bad}); err == nil {
			t.Errorf("ParseResolve(%q) accepted", bad)
		}
	}
}

func TestBucketHost(t *testing.T) {
	tests := []struct {
		name   string
		bucket string
		opts   s3.Options
		want   string
	}{
		{"virtual hosted", "my-bucket", s3.Options{Region: "us-east-1"}, "my-bucket.s3.us-east-1.amazonaws.com"},
		{"path style", "my-bucket", s3.Options{Region: "us-west-2", UsePathStyle: true}, "s3.us-west-2.amazonaws.com"},
		{"dotted name goes path style", "my.bucket", s3.Options{Region: "us-west-2"}, "s3.us-west-2.amazonaws.com"},
		{"dual-stack", "my-bucket", s3.Options{Region: "us-west-2",
			EndpointOptions: s3.EndpointResolverOptions{UseDualStackEndpoint: aws.DualStackEndpointStateEnabled}},
			"my-bucket.s3.dualstack.us-west-2.amazonaws.com"},
		//lint:ignore SA1019 the SDK still honours the deprecated flag, so preflight must read it too
		{"deprecated UseDualstack", "my-bucket", s3.Options{Region: "us-west-2", UseDualstack: true},
			"my-bucket.s3.dualstack.us-west-2.amazonaws.com"},
		{"FIPS", "my-bucket", s3.Options{Region: "us-west-2",
			EndpointOptions: s3.EndpointResolverOptions{UseFIPSEndpoint: aws.FIPSEndpointStateEnabled}},
			"my-bucket.s3-fips.us-west-2.amazonaws.com"},
		{"accelerate", "my-bucket", s3.Options{Region: "us-west-2", UseAccelerate: true}, "my-bucket.s3-accelerate.amazonaws.com"},
		{"express one zone", "mybkt--use1-az4--x-s3", s3.Options{Region: "us-east-1"},
			"mybkt--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com"},
		{"interface endpoint name", "my-bucket", s3.Options{Region: "us-east-1",
			BaseEndpoint: aws.String("https://bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com")},
			"my-bucket.bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Through s3.New, so the options are what a caller's client holds.
			got, err := bucketHost(context.Background(), s3.New(tt.opts).Options(), tt.bucket)
			if err != nil || got != tt.want {
				t.Errorf("host = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCustomEndpointDetection(t *testing.T) {
	for base, custom := range map[string]bool{
		"":                                   false,
		"http://minio.internal:9000":         true,
		"https://10.0.0.7":                   true,
		"https://s3.us-east-1.amazonaws.com": false,
		"https://bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com": false,
		"https://s3.cn-north-1.amazonaws.com.cn":                            false,
	} {
		o := s3.Options{}
		if base != "" {
			o.BaseEndpoint = aws.String(base)
		}
		if got := customEndpoint(o) != ""; got != custom {
			t.Errorf("customEndpoint(%q) = %v, want %v", base, got, custom)
		}
	}
}

func TestJudgePolicy(t *testing.T) {
	tests := []struct {
		name, doc string
		want      Status
	}{
		{"default", defaultPolicy, StatusWarn},
		{"default, AWS principal, single statement object",
			`{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"*","Resource":"*"}}`, StatusWarn},
		{"bucket objects allowed",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::my-bucket","arn:aws:s3:::my-bucket/*"]}]}`,
			StatusPass},
		{"action wildcard, case-insensitive",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"S3:Put*","Resource":"arn:aws:s3:::my-*/*"}]}`, StatusPass},
		{"other bucket only",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::logs/*"}]}`, StatusWarn},
		{"deny only", `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:PutObject","Resource":"*"}]}`, StatusWarn},
		{"url-encoded default", `%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%22*%22%2C%22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D`, StatusWarn},
		{"garbage", `{not json`, StatusWarn},
		{"empty", ``, StatusWarn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, detail := judgePolicy("vpce-1", tt.doc, "my-bucket", "aws"); got != tt.want {
				t.Errorf("status %s (%s), want %s", got, detail, tt.want)
			}
		})
	}
}

func TestWildcardMatch(t *testing.T) {
	for _, tt := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "arn:aws:s3:::b/k", true}, {"arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y", true},
		{"arn:aws:s3:::b/*", "arn:aws:s3:::bb/x", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*b*", "aaabaaa", true}, {"a*b*c", "abbbc", true}, {"a*b*c", "abbb", false}, {"", "", true},
	} {
		if got := wildcardMatch(tt.p, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tt.p, tt.s, got)
		}
	}
}

func TestVerdictAndExitCode(t *testing.T) {
	tests := []struct {
		statuses []Status
		verdict  Verdict
		exit     int
	}{
		{[]Status{StatusPass, StatusWarn, StatusNA}, VerdictPass, 0},
		{[]Status{StatusPass, StatusUnknown, StatusWarn}, VerdictUnknown, 2},
		{[]Status{StatusUnknown, StatusFail}, VerdictFail, 1},
		{[]Status{StatusNA}, VerdictPass, 0},
	}
	for _, tt := range tests {
		var checks []Check
		for _, s := range tt.statuses {
			checks = append(checks, Check{Status: s})
		}
		r := &Report{Verdict: verdictOf(checks)}
		if r.Verdict != tt.verdict || r.ExitCode() != tt.exit {
			t.Errorf("%v → %s/%d, want %s/%d", tt.statuses, r.Verdict, r.ExitCode(), tt.verdict, tt.exit)
		}
	}
}

func TestNATCost(t *testing.T) {
	if got := natCost(3<<30, 0.045); math.Abs(got-0.135) > 1e-9 {
		t.Errorf("natCost(3 GB) = %v, want 0.135", got)
	}
}
