package catalog

import (
	"context"
	"net/http"
	"os"
	"slices"
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

// TestListReadsTheSummariesBesideTheListings: List and ListComplete do not
// wait for the node's listings to read its stored summaries (a round trip
// each on S3): with the manifests' listing held back, the summaries' GET
// still arrives. ListComplete leaves out the unfinished backups.
func TestListReadsTheSummariesBesideTheListings(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := manifest.Node{Cluster: "c", Name: t.Name()}
	ms := putManifests(t, node, 2)
	if _, err := UpdateSummaries(ctx, client, node); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	dead := Pending{ID: manifest.NewID(at), Kind: "cassandra", Tag: "t", Host: "h", PID: 1, Started: at}
	if err := WritePending(ctx, client, node, dead); err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := transfer.New(ctx, transfer.Options{Bucket: "catalog", EndpointURL: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		list func(context.Context) ([]Summary, error)
		want []string
	}{
		{"List", func(ctx context.Context) ([]Summary, error) { return List(ctx, c, []manifest.Node{node}) }, []string{ms[0].ID, ms[1].ID, dead.ID}},
		{"ListComplete", func(ctx context.Context) ([]Summary, error) { return ListComplete(ctx, c, node) }, []string{ms[0].ID, ms[1].ID}},
	} {
		p.ClearRules()
		held := p.Add(faultproxy.Rule{Match: listing("/backups/"), Times: 1, Fault: faultproxy.Delay(time.Minute)})
		sums := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodGet, manifest.SummariesKey)})
		lctx, stop := context.WithCancel(ctx)
		type result struct {
			got []Summary
			err error
		}
		done := make(chan result, 1)
		go func() {
			got, err := tc.list(lctx)
			done <- result{got, err}
		}()
		deadline := time.After(20 * time.Second)
		for held.Seen() == 0 || sums.Seen() == 0 {
			select {
			case r := <-done:
				t.Fatalf("%s returned (%v) before its listing was let through", tc.name, r.err)
			case <-deadline:
				stop()
				t.Fatalf("%s: the summaries were not read while the manifests' listing was held (listing seen %d times, summaries %d)", tc.name, held.Seen(), sums.Seen())
			case <-time.After(10 * time.Millisecond):
			}
		}
		stop() // the held listing fails; the same call again, unheld
		<-done
		got, err := tc.list(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range got {
			ids = append(ids, s.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, ids, tc.want)
		}
	}
}
