package main

import (
	"encoding/json"
	"testing"
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
	if rep.Verdict != "pass" || status["credentials"] != "PASS" || status["bucket"] != "PASS" || status["route"] != "N/A" {
		t.Fatalf("verdict %s, checks %v", rep.Verdict, status)
	}
	wantExit(t, s3bak(t, "preflight", "--bucket", "no-such-bucket-preflight"), 1, "no-such-bucket-preflight")
}
