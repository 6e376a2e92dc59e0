package backup

import (
	"context"
	"sync"
	"testing"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
)

// memKnown is a Known in memory, for runs without the node's lock.
type memKnown struct {
	mu       sync.Mutex
	contents map[string]manifest.File // by SHA-256
	hints    map[string]string        // fingerprint → SHA-256
}

func newMemKnown() *memKnown {
	return &memKnown{contents: map[string]manifest.File{}, hints: map[string]string{}}
}

func (k *memKnown) Lookup(fp string, f *manifest.File) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	sha, ok := k.hints[fp]
	if !ok {
		return false
	}
	f.SHA256 = sha
	return k.fill(f)
}

func (k *memKnown) Content(f *manifest.File) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.fill(f)
}

func (k *memKnown) fill(f *manifest.File) bool {
	s, ok := k.contents[f.SHA256]
	if !ok || s.Size != f.Size {
		return false
	}
	f.CopyStored(&s)
	return true
}

func (k *memKnown) Record(fp string, f *manifest.File) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.contents[f.SHA256] = *f
	if fp != "" {
		k.hints[fp] = f.SHA256
	}
}

func (k *memKnown) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.contents)
}

// stored reads back the manifest res wrote, whole.
func stored(t *testing.T, e *Engine, res *Result) *manifest.Manifest {
	t.Helper()
	m, err := catalog.Load(context.Background(), client, e.opts.Node, res.Manifest.ID)
	if err != nil {
		t.Fatalf("read back manifest %s: %v", res.Manifest.ID, err)
	}
	return m
}
