// Package runlog keeps a record of every backup, restore, verify and purge
// under the node's prefix (manifest.RunKey): when it ran, how it ended, and
// what it moved. A failed run leaves a trace in the bucket, so a node that
// fails looks different from a node that never ran; `s3bak status` reads
// the latest record of each node. Only the last N records of a node are
// kept.
package runlog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Schema is the version of the record's form.
const Schema = 1

// DefaultKeep is how many records of a node are kept by default.
const DefaultKeep = 30

// MaxErrorLen bounds the error message kept in a record.
const MaxErrorLen = 4 << 10

// maxRecordSize bounds what is read as a record.
const maxRecordSize = 64 << 10

// Outcomes of a run.
const (
	Success     = "success"
	Failed      = "failed"
	Interrupted = "interrupted"
)

// Record is one run of a command on a node. It never holds credentials,
// flags or the environment: only what the run did and how it ended.
type Record struct {
	Schema          int       `json:"schema"`
	Command         string    `json:"command"`
	Cluster         string    `json:"cluster"`
	Node            string    `json:"node"`
	Host            string    `json:"host,omitempty"`
	Started         time.Time `json:"started"`
	Finished        time.Time `json:"finished"`
	DurationSeconds float64   `json:"duration_seconds"`
	Outcome         string    `json:"outcome"` // success, failed, interrupted
	ExitCode        int       `json:"exit_code"`
	ErrorClass      string    `json:"error_class,omitempty"`
	Error           string    `json:"error,omitempty"`
	Tag             string    `json:"tag,omitempty"`
	BackupID        string    `json:"backup_id,omitempty"`
	Files           int       `json:"files"`
	BytesRead       int64     `json:"bytes_read"`
	BytesUploaded   int64     `json:"bytes_uploaded"`
	BytesStored     int64     `json:"bytes_stored"`
	Tool            string    `json:"tool"`
}

// Failed says whether the run did not succeed.
func (r *Record) Failed() bool { return r.ExitCode != 0 }

// Write stores the record under its node's prefix, then deletes the node's
// oldest records beyond keep (keep < 1 keeps every record). The records
// are listed while the new one is written, a round trip saved at the end
// of every run; the trim waits for the write: a failed write trims
// nothing, and a failed trim loses nothing.
func Write(ctx context.Context, c *transfer.Client, node manifest.Node, r *Record, keep int) (string, error) {
	if r.Command == "" || manifest.CheckName("command", r.Command) != nil {
		return "", fmt.Errorf("run record: bad command %q", r.Command)
	}
	r.Schema = Schema
	if len(r.Error) > MaxErrorLen {
		r.Error = r.Error[:MaxErrorLen] + "…"
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	key := node.Root() + manifest.RunKey(r.Started, r.Command)
	var (
		keys   []string
		listed errgroup.Group
	)
	if keep > 0 {
		listed.Go(func() (err error) {
			keys, err = Keys(ctx, c, node)
			return err
		})
	}
	err = c.PutBytes(ctx, key, b, "application/json")
	listErr := listed.Wait()
	if err != nil {
		return key, fmt.Errorf("run record s3://%s/%s: %w", c.Bucket, key, err)
	}
	if keep < 1 {
		return key, nil
	}
	if listErr != nil {
		return key, fmt.Errorf("run records of node %s: %w", node.Name, listErr)
	}
	if i, found := slices.BinarySearch(keys, key); !found {
		keys = slices.Insert(keys, i, key) // listed before it was written
	}
	return key, trim(ctx, c, node, keys, keep)
}

// Keys lists the keys of the node's run records, oldest first.
func Keys(ctx context.Context, c *transfer.Client, node manifest.Node) ([]string, error) {
	var keys []string
	for o, err := range c.List(ctx, node.Root()+manifest.RunsDir+"/") {
		if err != nil {
			return nil, err
		}
		if manifest.IsRunKey(o.Key) {
			keys = append(keys, o.Key)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Trim deletes the node's oldest run records beyond the newest keep.
func Trim(ctx context.Context, c *transfer.Client, node manifest.Node, keep int) error {
	if keep < 1 {
		return nil
	}
	keys, err := Keys(ctx, c, node)
	if err != nil {
		return fmt.Errorf("run records of node %s: %w", node.Name, err)
	}
	return trim(ctx, c, node, keys, keep)
}

// trim deletes the oldest of keys (sorted) beyond the newest keep.
func trim(ctx context.Context, c *transfer.Client, node manifest.Node, keys []string, keep int) error {
	if len(keys) <= keep {
		return nil
	}
	if err := c.DeleteMany(ctx, keys[:len(keys)-keep], 1); err != nil {
		return fmt.Errorf("trim run records of node %s: %w", node.Name, err)
	}
	return nil
}

// Read reads one record.
func Read(ctx context.Context, c *transfer.Client, key string) (*Record, error) {
	b, err := c.GetBytes(ctx, key, maxRecordSize)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("run record s3://%s/%s: not valid JSON: %w", c.Bucket, key, err)
	}
	return &r, nil
}

// List reads the node's records, oldest first. A record deleted meanwhile
// (a trim by a run of the node) is skipped.
func List(ctx context.Context, c *transfer.Client, node manifest.Node) ([]*Record, error) {
	keys, err := Keys(ctx, c, node)
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, k := range keys {
		r, err := Read(ctx, c, k)
		if errors.Is(err, transfer.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b *Record) int { return a.Started.Compare(b.Started) })
	return out, nil
}

// Latest reads the node's newest record: one LIST and one GET. Nil when the
// node has none.
func Latest(ctx context.Context, c *transfer.Client, node manifest.Node) (*Record, error) {
	keys, err := Keys(ctx, c, node)
	if err != nil {
		return nil, err
	}
	// Newest first; a record trimmed between the LIST and the GET gives
	// way to the one before it.
	for _, k := range slices.Backward(keys) {
		r, err := Read(ctx, c, k)
		if errors.Is(err, transfer.ErrNotFound) {
			continue
		}
		return r, err
	}
	return nil, nil
}

// Scrub removes the given secrets (credentials the run used) from text,
// should any have found their way into an error message. Values shorter
// than 8 bytes are not secrets worth the false matches.
func Scrub(text string, secrets ...string) string {
	secrets = slices.DeleteFunc(slices.Clone(secrets), func(s string) bool { return len(s) < 8 })
	// Longest first: a secret that contains another is removed whole.
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, "[redacted]")
	}
	return text
}
