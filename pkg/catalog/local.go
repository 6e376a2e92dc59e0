package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Local is a backup's stored manifest copied to a temporary file, read
// file by file as often as a restore or a verify passes over it: one GET,
// and memory that does not grow with the number of files.
type Local struct {
	f    *os.File
	name string // s3://bucket/key, for errors
	m    *manifest.Manifest
}

// Fetch copies backup id's manifest (id "" or "latest": the newest) into
// a temporary file in dir ("" is TMPDIR) and reads its header.
func Fetch(ctx context.Context, c *transfer.Client, node manifest.Node, id, dir string) (*Local, error) {
	id, err := resolveID(ctx, c, node, id)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "s3bak-manifest-*")
	if err != nil {
		return nil, fmt.Errorf("a temporary file for the manifest (set TMPDIR to a writable directory): %w", err)
	}
	os.Remove(f.Name()) // nothing left behind, whatever ends the run
	key := node.Root() + manifest.ManifestKey(id)
	l := &Local{f: f, name: fmt.Sprintf("s3://%s/%s", c.Bucket, key)}
	if err := l.copy(ctx, c, key); err != nil {
		f.Close()
		if errors.Is(err, transfer.ErrNotFound) {
			return nil, fmt.Errorf("%w: backup %s of node %s (run `s3bak list` to see the backups)", ErrNoBackup, id, node.Name)
		}
		return nil, err
	}
	x, err := l.reader()
	if err != nil {
		f.Close()
		return nil, err
	}
	defer x.Close()
	l.m = x.Manifest()
	if l.m.ID != id || l.m.Cluster != node.Cluster || l.m.Node != node.Name {
		f.Close()
		return nil, fmt.Errorf("%s: %w: it says it is backup %s of %s/%s", l.name, manifest.ErrCorrupt, l.m.ID, l.m.Cluster, l.m.Node)
	}
	return l, nil
}

func (l *Local) copy(ctx context.Context, c *transfer.Client, key string) error {
	body, err := c.Get(ctx, key, 0, 0)
	if err != nil {
		return err
	}
	defer body.Close()
	if _, err := io.Copy(l.f, body); err != nil {
		return fmt.Errorf("read %s: %w", l.name, err)
	}
	return nil
}

func (l *Local) reader() (*manifest.Reader, error) {
	x, err := manifest.NewReader(io.NewSectionReader(l.f, 0, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.name, err)
	}
	return x, nil
}

// Manifest is the manifest's header (no files).
func (l *Local) Manifest() *manifest.Manifest { return l.m }

// Files reads the files afresh, in path order; an error names the object.
func (l *Local) Files() iter.Seq2[manifest.File, error] {
	return func(yield func(manifest.File, error) bool) {
		x, err := l.reader()
		if err != nil {
			yield(manifest.File{}, err)
			return
		}
		defer x.Close()
		for {
			f, err := x.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(manifest.File{}, fmt.Errorf("%s: %w", l.name, err))
				return
			}
			if !yield(f, nil) {
				return
			}
		}
	}
}

// Close removes the copy.
func (l *Local) Close() { l.f.Close() }
