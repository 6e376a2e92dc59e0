package catalog

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// TestAuditServerErrorsAreNotMissingObjects: a missing object is one a
// complete listing does not hold. A server that answers the listing or the
// manifests with 500 (after the SDK's retries) fails the audit with an
// error — verify's exit 1 — and never reports an object missing (exit 5).
func TestAuditServerErrorsAreNotMissingObjects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	ms := putManifests(t, node, 2) // their data objects do not exist
	p, err := faultproxy.New(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := transfer.New(ctx, transfer.Options{Bucket: "catalog", EndpointURL: p.URL, MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		match func(*http.Request) bool
	}{
		{"backups listing", listing("/backups/")},
		{"manifest GET", faultproxy.Request(http.MethodGet, "/backups/")},
		{"data listing", listing("/data/")}, // what Missing is computed from
	} {
		p.ClearRules()
		rule := p.Add(faultproxy.Rule{Match: tc.match, Fault: faultproxy.Status(500)})
		a, err := AuditNode(ctx, c, node)
		if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), "500") {
			t.Fatalf("audit with every %s answered 500: %+v, %v; want an error naming the status", tc.name, a, err)
		}
		if rule.Applied() == 0 {
			t.Fatalf("no %s request was answered 500", tc.name)
		}
		t.Logf("audit failed as it should: %v", err)
	}
	p.ClearRules()
	a, err := AuditNode(ctx, c, node)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if len(a.Missing[m.ID]) != 1 {
			t.Fatalf("missing %v: want each backup's object", a.Missing)
		}
	}
}

// listing matches the LISTs of a prefix that contains sub.
func listing(sub string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		q := r.URL.Query()
		return r.Method == http.MethodGet && q.Has("list-type") && strings.Contains(q.Get("prefix"), sub)
	}
}
