package backup

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/lock"
)

// TestManifestWhoseReplyIsLost: the manifest's conditional write
// (If-None-Match) reached S3 but its reply did not; the SDK's retry then
// fails its condition against the manifest itself. The backup recognises
// its own manifest and succeeds — it used to fail with "a backup … already
// exists" although it had written that backup — and clears its lock and
// pending marker.
func TestManifestWhoseReplyIsLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, c := proxied(t)
	drop := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodPut, "/backups/"), Times: 1, Fault: faultproxy.DropReply})
	set := writeSet(t, 1, 3<<20, 20)
	e, _, _ := engine(t, "lost-manifest-reply", nil, 2, 8)
	e.via(c)
	res, err := e.RunLocked(ctx, set, SessionOptions{})
	if err != nil {
		t.Fatalf("backup whose manifest reply was lost: %v", err)
	}
	if drop.Applied() != 1 || drop.Seen() != 2 {
		t.Fatalf("proxy saw %d manifest PUTs (%d replies dropped), want the write and its retry", drop.Seen(), drop.Applied())
	}
	node := e.opts.Node
	m, err := catalog.Load(ctx, client, node, res.Manifest.ID)
	if err != nil {
		t.Fatalf("manifest of the backup: %v", err)
	}
	if len(m.Files) != len(set.Files) || !m.Finished.Equal(res.Manifest.Finished) {
		t.Fatalf("stored manifest has %d files, finished %s; the run's has %d, finished %s",
			len(m.Files), m.Finished, len(set.Files), res.Manifest.Finished)
	}
	if l, err := lock.Read(ctx, client, node.Root()+lock.Key); err != nil || l != nil {
		t.Fatalf("lock after the backup: %+v, %v; want released", l, err)
	}
	if pending, err := catalog.ListPending(ctx, client, node); err != nil || len(pending) != 0 {
		t.Fatalf("pending markers after the backup: %v, %v; want none", pending, err)
	}
}

// TestEveryWriteWhoseFirstReplyIsLost: a backup in which the first reply
// to every distinct write (path and query) of one method is lost — the
// lock's creation, the pending marker, every part, the pack, the manifest
// and the index; the deletes of the marker and the lock — still completes
// with its manifest stored and its lock released.
func TestEveryWriteWhoseFirstReplyIsLost(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   []string // writes that must have lost a reply
		gap    string   // a known failure, skipped until fixed
	}{
		{http.MethodPut, []string{"/lock.json", "/pending/", "partNumber=", ".pack", "/backups/", "/backups.json.zst"}, ""},
		{http.MethodDelete, []string{"/lock.json", "/pending/"}, ""},
		// CompleteMultipartUpload: the SDK's retry of a completion S3 did
		// make finds no upload (404 NoSuchUpload); the object is there.
		{http.MethodPost, []string{"uploads=", "uploadId="}, ""},
	} {
		t.Run(tc.method, func(t *testing.T) {
			if tc.gap != "" {
				t.Skip("known gap: " + tc.gap)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			p, c := proxied(t)
			var mu sync.Mutex
			seen := map[string]bool{}
			p.Add(faultproxy.Rule{Match: func(r *http.Request) bool {
				mu.Lock()
				defer mu.Unlock()
				k := r.URL.Path + "?" + r.URL.RawQuery
				if r.Method != tc.method || seen[k] {
					return false
				}
				seen[k] = true
				return true
			}, Fault: faultproxy.DropReply})
			set := writeSet(t, 2, 6<<20, 20)
			e, _, _ := engine(t, "first-reply-lost-"+tc.method, nil, 2, 8)
			e.via(c)
			res, err := e.RunLocked(ctx, set, SessionOptions{})
			mu.Lock()
			var dropped []string
			for k := range seen {
				dropped = append(dropped, k)
			}
			mu.Unlock()
			if err != nil {
				t.Fatalf("backup with the first reply of every %s lost: %v", tc.method, err)
			}
			for _, w := range tc.want {
				found := false
				for _, d := range dropped {
					found = found || strings.Contains(d, w)
				}
				if !found {
					t.Errorf("no %s of %q lost its reply; lost: %v", tc.method, w, dropped)
				}
			}
			node := e.opts.Node
			if _, err := catalog.Load(ctx, client, node, res.Manifest.ID); err != nil {
				t.Fatalf("manifest of the backup: %v", err)
			}
			if l, err := lock.Read(ctx, client, node.Root()+lock.Key); err != nil || l != nil {
				t.Fatalf("lock after the backup: %+v, %v; want released", l, err)
			}
		})
	}
}
