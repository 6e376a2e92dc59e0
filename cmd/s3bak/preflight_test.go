package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestPreflightCustomEndpoint: against MinIO the route checks do not
// apply; credentials and the bucket are still checked.
func TestPreflightCustomEndpoint(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	r := mustRun(t, "preflight", "--bucket", bucket, "--output", "json")
	var rep struct {
		Verdict string `json:"verdict"`
		Checks  []struct{ ID, Status string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	status := map[string]string{}
	for _, c := range rep.Checks {
		status[c.ID] = c.Status
	}
	if rep.Verdict != "pass" || status["credentials"] != "PASS" || status["bucket"] != "PASS" || status["permissions"] != "PASS" || status["route"] != "N/A" {
		t.Fatalf("verdict %s, checks %v", rep.Verdict, status)
	}
	// The permissions probe cleans up after itself.
	if keys := bucketKeys(t, bucket); len(keys) != 0 {
		t.Fatalf("preflight left %v in the bucket", keys)
	}
	wantExit(t, s3bak(t, "preflight", "--bucket", "no-such-bucket-preflight"), 1, "no-such-bucket-preflight")
}

// bucketKeys lists every object of a bucket, with the root credentials.
func bucketKeys(t *testing.T, bucket string) []string {
	t.Helper()
	c := rawClient(minio)
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}
