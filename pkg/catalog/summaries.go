package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// maxSummariesSize bounds the decompressed summaries read from the bucket.
const maxSummariesSize = 256 << 20

// The summaries of a node's complete backups sit in one small object
// (manifest.SummariesKey), so that list reads a few kilobytes instead of
// every manifest. They are a cache: list reads the manifests they lack,
// and only the holder of the node's lock writes them.

// LoadSummaries reads the node's backup summaries.
func LoadSummaries(ctx context.Context, c *transfer.Client, node manifest.Node) ([]Summary, error) {
	key := node.Root() + manifest.SummariesKey
	b, err := c.GetBytes(ctx, key, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	raw, err := chunk.Inflate(b, maxSummariesSize)
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

// SaveSummaries writes the node's backup summaries.
func SaveSummaries(ctx context.Context, c *transfer.Client, node manifest.Node, s []Summary) error {
	s = slices.Clone(s)
	sortByID(s)
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := c.PutBytes(ctx, node.Root()+manifest.SummariesKey, compress(b), "application/zstd"); err != nil {
		return fmt.Errorf("write backup summaries: %w", err)
	}
	return nil
}

// UpdateSummaries brings the node's summaries up to date with its
// manifests — adding those of manifests they lack (reading only their
// headers, except for the manifests have, which the caller holds: a backup
// that just wrote its own) and dropping those of backups that are gone —
// and saves them when they changed. Under the node's lock.
func UpdateSummaries(ctx context.Context, c *transfer.Client, node manifest.Node, have ...*manifest.Manifest) ([]Summary, error) {
	// Missing, damaged or unreadable summaries are made anew from the
	// manifests' headers: they are a cache.
	ids, old, err := idsAndSummaries(ctx, c, node, nil)
	if err != nil {
		return nil, err
	}
	known := slices.Clone(old)
	for _, m := range have {
		if !slices.ContainsFunc(old, func(s Summary) bool { return s.ID == m.ID }) {
			known = append(known, summarize(m))
		}
	}
	fresh, _, err := summariesOf(ctx, c, node, ids, known)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(summaryIDs(old), summaryIDs(fresh)) {
		if err := SaveSummaries(ctx, c, node, fresh); err != nil {
			return nil, err
		}
	}
	return fresh, nil
}

func summaryIDs(s []Summary) []string {
	ids := make([]string, len(s))
	for i := range s {
		ids[i] = s[i].ID
	}
	slices.Sort(ids)
	return ids
}

// summariesOf returns the summaries of ids: known ones as they are, the
// others from their manifests' headers.
func summariesOf(ctx context.Context, c *transfer.Client, node manifest.Node, ids []string, known []Summary) ([]Summary, bool, error) {
	byID := map[string]Summary{}
	for _, s := range known {
		byID[s.ID] = s
	}
	var (
		mu      sync.Mutex
		out     []Summary
		missing []string
	)
	for _, id := range ids {
		if s, ok := byID[id]; ok {
			out = append(out, s)
		} else {
			missing = append(missing, id)
		}
	}
	err := EachHeader(ctx, c, node, missing, func(m *manifest.Manifest) {
		mu.Lock()
		out = append(out, summarize(m))
		mu.Unlock()
	})
	sortByID(out)
	return out, len(missing) > 0, err
}

func compress(b []byte) []byte {
	e, _ := chunk.NewCatalogWriter(nil)
	defer e.Close()
	return e.EncodeAll(b, nil)
}

// sortByID orders summaries oldest first: ids sort as their times do.
func sortByID(s []Summary) {
	slices.SortFunc(s, func(a, b Summary) int { return strings.Compare(a.ID, b.ID) })
}

// RebuildSummaries makes the node's summaries anew from its manifests'
// headers and saves them. Under the node's lock.
func RebuildSummaries(ctx context.Context, c *transfer.Client, node manifest.Node) ([]Summary, error) {
	ids, err := IDs(ctx, c, node)
	if err != nil {
		return nil, err
	}
	s, _, err := summariesOf(ctx, c, node, ids, nil)
	if err != nil {
		return nil, err
	}
	return s, SaveSummaries(ctx, c, node, s)
}
