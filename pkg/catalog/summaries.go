package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// saveSummaries writes the backups' summaries beside the index when they
// changed, so that list reads a few kilobytes instead of an index that
// grows with every file ever stored. They are a cache of a cache: list
// falls back to the index, and reads the manifests neither knows.
func (x *Index) saveSummaries(ctx context.Context, c *transfer.Client, node manifest.Node) error {
	x.mu.Lock()
	b, err := json.Marshal(x.Backups)
	same := bytes.Equal(b, x.savedSummaries)
	x.mu.Unlock()
	if err != nil || same {
		return err
	}
	if err := c.PutBytes(ctx, node.Root()+SummariesKey, compress(b), "application/zstd"); err != nil {
		return fmt.Errorf("write backup summaries: %w", err)
	}
	x.mu.Lock()
	x.savedSummaries = b
	x.mu.Unlock()
	return nil
}

// LoadSummaries reads the backups' summaries written beside the index.
func LoadSummaries(ctx context.Context, c *transfer.Client, node manifest.Node) ([]Summary, error) {
	key := node.Root() + SummariesKey
	b, err := c.GetBytes(ctx, key, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	raw, err := chunk.Inflate(b, maxIndexSize)
	if err != nil {
		return nil, fmt.Errorf("summaries s3://%s/%s: %w", c.Bucket, key, err)
	}
	var out []Summary
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("summaries s3://%s/%s: not valid JSON: %w", c.Bucket, key, err)
	}
	for _, s := range out {
		if err := manifest.CheckName("backup id", s.ID); err != nil {
			return nil, fmt.Errorf("summaries s3://%s/%s: %w", c.Bucket, key, err)
		}
	}
	return out, nil
}

func compress(b []byte) []byte {
	e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	defer e.Close()
	return e.EncodeAll(b, nil)
}
