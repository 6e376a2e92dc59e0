package transfer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3bak/s3bak/pkg/preflight/fakeaws"
)

// TestHeadBucketRegion drives the real SDK client against S3's HEAD
// bucket answers over the wire: the region is read from
// x-amz-bucket-region on a 200, on the 301 of a bucket in another region
// and on the 403 of another account's bucket; a 404 is an error. The
// probe is unsigned: no credentials are needed to learn a region.
func TestHeadBucketRegion(t *testing.T) {
	fake := &fakeaws.S3{
		Buckets:   map[string]string{"eu-bucket": "eu-west-3", "theirs": "ap-southeast-2", "here": "us-east-1"},
		Forbidden: map[string]bool{"theirs": true},
	}
	var signed []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			signed = append(signed, a)
		}
		if r.URL.Path == "/here" {
			// What S3 answers a request signed for the bucket's region.
			w.Header().Set("x-amz-bucket-region", "us-east-1")
			w.WriteHeader(http.StatusOK)
			return
		}
		fake.ServeHTTP(w, r)
	}))
	defer ts.Close()
	cli := s3.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
		o.UsePathStyle = true
	})
	ctx := context.Background()
	for bucket, want := range map[string]string{"eu-bucket": "eu-west-3", "theirs": "ap-southeast-2", "here": "us-east-1"} {
		got, err := headBucketRegion(ctx, cli, bucket)
		if err != nil || got != want {
			t.Errorf("%s: region %q (err %v), want %q", bucket, got, err, want)
		}
	}
	if got, err := headBucketRegion(ctx, cli, "missing"); err == nil {
		t.Errorf("missing bucket: region %q, want an error", got)
	}
	if len(signed) > 0 {
		t.Errorf("the region probe was signed: %q", signed)
	}
}

// TestBucketRegionFallback: a custom endpoint is never asked (every
// S3-compatible store signs with us-east-1).
func TestBucketRegionFallback(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("asked %s %s", r.Method, r.URL)
	}))
	defer ts.Close()
	if got := bucketRegion(context.Background(), aws.Config{}, Options{Bucket: "b", EndpointURL: ts.URL}); got != "us-east-1" {
		t.Errorf("region %q, want us-east-1", got)
	}
}
