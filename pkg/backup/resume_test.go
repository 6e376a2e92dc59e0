package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// cancelAfter cancels the run once n bytes of the file were read, mid-file.
type cancelAfter struct {
	n      int64
	read   atomic.Int64
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancelAfter) Add(n int64) {
	if c.read.Add(n) >= c.n {
		c.once.Do(c.cancel)
	}
}

// TestInterruptedLargeFileContinuesWhereItStopped: a backup stopped in the
// middle of a large file leaves its stored parts recorded in the index; the
// next run checks them against the file and the server and sends only the
// rest. Before, only finished files were credited, and a 300 GB file
// interrupted at 95% started over.
func TestInterruptedLargeFileContinuesWhereItStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, c := proxied(t)
	var partBytes atomic.Int64
	p.Add(faultproxy.Rule{Match: func(r *http.Request) bool {
		if r.Method == http.MethodPut && r.URL.Query().Get("uploadId") != "" {
			partBytes.Add(r.ContentLength)
		}
		return false
	}})
	dir := t.TempDir()
	raw := make([]byte, 160<<20+4321) // random: stored as it is
	rand.Read(raw)
	abs := filepath.Join(dir, "nb-1-big-Data.db")
	if err := os.WriteFile(abs, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(abs)
	set := &source.Set{Kind: "cassandra", Tag: "t", Files: []source.File{{Path: "ks/t-1/nb-1-big-Data.db", Dir: filepath.Dir(abs), Name: filepath.Base(abs), Size: fi.Size(), Mode: 0o644, ModTime: fi.ModTime()}}}
	newEngine := func(progress *cancelAfter) *Engine {
		e, _, _ := engine(t, "resume-mid-file", nil, 2, 4)
		e.via(c)
		if progress != nil {
			e.opts.Progress = progress
		}
		return e
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	if _, err := newEngine(&cancelAfter{n: int64(len(raw)) * 9 / 10, cancel: stopRun}).RunLocked(runCtx, set, SessionOptions{}); err == nil {
		t.Fatal("the interrupted run succeeded")
	}
	node := manifest.Node{Cluster: "c", Name: "resume-mid-file"}
	if n := len(partials(t, node)); n != 1 {
		t.Fatalf("the checkpoint records %d partial uploads, want 1", n)
	}
	first := partBytes.Swap(0)

	res, err := newEngine(nil).RunLocked(ctx, set, SessionOptions{})
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	second := partBytes.Load()
	t.Logf("part bytes sent: %d MiB by the interrupted run, %d MiB by the rerun, of a %d MiB file", first>>20, second>>20, len(raw)>>20)
	if second >= int64(len(raw))/2 {
		t.Fatalf("the rerun sent %d bytes of parts, not less than half the %d-byte file", second, len(raw))
	}
	if n := len(partials(t, node)); n != 0 {
		t.Fatal("the completed upload is still recorded as partial")
	}
	m, err := catalog.Load(ctx, client, node, res.Manifest.ID)
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if _, err := restore.Run(ctx, client, node, m, restore.Options{Target: target}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(target, "ks/t-1/nb-1-big-Data.db"))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("restored file differs (%v)", err)
	}
}

// partials reads the node's recorded partial uploads.
func partials(t *testing.T, node manifest.Node) map[string]*catalog.Partial {
	t.Helper()
	b, err := client.GetBytes(context.Background(), node.Root()+manifest.PartialsKey, 1<<20)
	if errors.Is(err, transfer.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ps map[string]*catalog.Partial
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}
