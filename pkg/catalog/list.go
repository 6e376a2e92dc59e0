package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Summary is one line of `s3bak list`.
type Summary struct {
	Cluster     string    `json:"cluster"`
	Node        string    `json:"node"`
	ID          string    `json:"id"`
	Status      string    `json:"status,omitempty"` // complete, running, incomplete
	Kind        string    `json:"kind"`
	Tag         string    `json:"tag"`
	Time        time.Time `json:"time"`
	Files       int       `json:"files"`
	RawBytes    int64     `json:"raw_bytes"`
	StoredBytes int64     `json:"stored_bytes"`
	// Topology is what a Cassandra backup recorded of its node (backup
	// --topology, the default), in short: absent for other backups.
	Topology *Topology `json:"topology,omitempty"`
}

// Topology is a summary's node topology: the manifest's cassandra.* keys,
// with the number of tokens (the tokens themselves are in the manifest).
type Topology struct {
	ClusterName   string `json:"cluster_name"`
	DC            string `json:"dc"`
	Rack          string `json:"rack"`
	HostID        string `json:"host_id"`
	ListenAddress string `json:"listen_address"`
	Version       string `json:"version"`
	Tokens        int    `json:"tokens"`
}

// Short is the topology in a list's column: "dc1/rack1 16 tokens 4.1.7".
func (t *Topology) Short() string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%s/%s %d tokens %s", t.DC, t.Rack, t.Tokens, t.Version)
}

// Statuses of a Summary.
const (
	Complete   = "complete"
	Running    = "running"
	Incomplete = "incomplete"
)

// Pending is a started backup's marker.
type Pending struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Tag     string    `json:"tag"`
	Host    string    `json:"host"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// PendingKey is the marker's key relative to the node's root.
func PendingKey(id string) string { return manifest.PendingKey(id) }

// WritePending marks a backup as started.
func WritePending(ctx context.Context, c *transfer.Client, node manifest.Node, p Pending) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return c.PutBytes(ctx, node.Root()+PendingKey(p.ID), b, "application/json")
}

// ListPending returns the node's markers of unfinished backups, but for
// those of the backups except, which are not read (a backup clearing its
// own marker knows what it holds).
func ListPending(ctx context.Context, c *transfer.Client, node manifest.Node, except ...string) ([]Pending, error) {
	var out []Pending
	for o, err := range c.List(ctx, node.Root()+manifest.PendingDir+"/") {
		if err != nil {
			return nil, err
		}
		if id, ok := manifest.IDFromKey(o.Key); !ok || slices.Contains(except, id) {
			continue
		}
		b, err := c.GetBytes(ctx, o.Key, 64<<10)
		if errors.Is(err, transfer.ErrNotFound) {
			continue // finished meanwhile
		}
		if err != nil {
			return nil, err
		}
		var p Pending
		if json.Unmarshal(b, &p) != nil || manifest.CheckName("backup id", p.ID) != nil {
			continue // not ours to interpret; purge removes it
		}
		out = append(out, p)
	}
	return out, nil
}

// List summarises the backups of the given nodes: the complete ones from
// each node's summaries (reading the headers of the manifests they lack) and
// the unfinished ones from their markers, oldest first per node.
func List(ctx context.Context, c *transfer.Client, nodes []manifest.Node) ([]Summary, error) {
	var out []Summary
	for _, n := range nodes {
		s, err := listNode(ctx, c, n)
		if err != nil {
			return nil, fmt.Errorf("list node %s: %w", n.Name, err)
		}
		out = append(out, s...)
	}
	return out, nil
}

func listNode(ctx context.Context, c *transfer.Client, node manifest.Node) ([]Summary, error) {
	// The markers are read before the manifests: a backup that finishes
	// in between (manifest written, then marker deleted) is then seen with
	// its manifest, rather than with neither.
	var pending []Pending
	out, ids, err := complete(ctx, c, node, func() (err error) {
		pending, err = ListPending(ctx, c, node)
		return err
	})
	if err != nil {
		return nil, err
	}
	unfinished, err := unfinishedSummaries(ctx, c, node, pending, ids)
	if err != nil {
		return nil, err
	}
	out = append(out, unfinished...)
	sortByID(out)
	return out, nil
}

// ListComplete summarises the node's complete backups, oldest first: List
// without the unfinished ones, whose markers it does not read, so that
// the manifests' listing and the stored summaries are read at once (a
// round trip to S3, not three).
func ListComplete(ctx context.Context, c *transfer.Client, node manifest.Node) ([]Summary, error) {
	out, _, err := complete(ctx, c, node, nil)
	if err != nil {
		return nil, fmt.Errorf("list node %s: %w", node.Name, err)
	}
	return out, nil
}

// complete summarises the node's complete backups, and returns their ids:
// from the stored summaries, and the headers of the manifests they lack.
// before, when set, runs ahead of the manifests' listing (see
// idsAndSummaries).
func complete(ctx context.Context, c *transfer.Client, node manifest.Node, before func() error) ([]Summary, []string, error) {
	ids, stored, err := idsAndSummaries(ctx, c, node, before)
	if err != nil {
		return nil, nil, err
	}
	out, _, err := summariesOf(ctx, c, node, ids, stored)
	if err != nil {
		return nil, nil, err
	}
	for i := range out {
		out[i].Status = Complete
	}
	return out, ids, nil
}

// idsAndSummaries lists the node's manifests and reads its stored
// summaries at once: on S3 the two cost the longer round trip, not their
// sum. before, when set, runs first, ahead of the listing (not of the
// summaries' read). Summaries that cannot be read are none (knownSummaries).
func idsAndSummaries(ctx context.Context, c *transfer.Client, node manifest.Node, before func() error) (ids []string, stored []Summary, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	known := make(chan []Summary, 1)
	go func() { known <- knownSummaries(sctx, c, node) }()
	if before != nil {
		err = before()
	}
	if err == nil {
		ids, err = IDs(ctx, c, node)
	}
	if err != nil {
		cancel() // the summaries are not needed
	}
	return ids, <-known, err
}

// knownSummaries are the node's stored summaries (a few kilobytes), else
// none: list then reads every manifest's header.
func knownSummaries(ctx context.Context, c *transfer.Client, node manifest.Node) []Summary {
	if s, err := LoadSummaries(ctx, c, node); err == nil {
		return s
	}
	return nil
}

// unfinishedSummaries turns pending markers into lines: running when the
// node's lock is held by that backup, incomplete otherwise. A marker whose
// backup has its manifest (complete, one of ids) is left over from a run
// that wrote the manifest and stopped before it removed the marker: the
// manifest is the truth, the backup is listed once, as complete, and the
// marker is cleared by the next backup of its snapshot or by purge.
func unfinishedSummaries(ctx context.Context, c *transfer.Client, node manifest.Node, pending []Pending, ids []string) ([]Summary, error) {
	pending = slices.DeleteFunc(pending, func(p Pending) bool {
		_, complete := slices.BinarySearch(ids, p.ID)
		return complete
	})
	if len(pending) == 0 {
		return nil, nil
	}
	holder, err := lock.Read(ctx, c, node.Root()+lock.Key)
	if err != nil {
		return nil, err
	}
	var out []Summary
	for _, p := range pending {
		st := Incomplete
		if holder != nil && holder.Backup == p.ID && holder.Expires.After(time.Now()) && !holder.Dead() {
			st = Running
		}
		out = append(out, Summary{Cluster: node.Cluster, Node: node.Name, ID: p.ID, Status: st, Kind: p.Kind,
			Tag: p.Tag, Time: p.Started})
	}
	return out, nil
}

// NodeOf is the manifest.Node of another node of the same cluster.
func NodeOf(n manifest.Node, name string) manifest.Node {
	n.Name = path.Base(name)
	return n
}
