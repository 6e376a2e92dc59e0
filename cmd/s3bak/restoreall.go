package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/budget"
	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

// restoreNodesAtOnce bounds the nodes restored in parallel; they share one
// memory budget.
const restoreNodesAtOnce = 2

// runRestoreAll restores, on this host, every node's backup of one tag into
// TARGET/<node>/ — the files of a whole cluster's night, for sstableloader
// into a cluster of another size or layout. Nodes without a complete
// backup of the tag are named, and make the command exit 6 once the others
// are restored.
func runRestoreAll(cmd *cobra.Command, g *globalOptions, o *restoreOptions) error {
	ctx := cmd.Context()
	if o.sel.tag == "" || o.sel.fromNode != "" || cmd.Flags().Changed("backup") {
		return &usageError{errors.New("--all-nodes restores one night of the whole cluster: give --tag T, not --backup or --from-node")}
	}
	local, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	nodes, err := clusterNodes(ctx, client, local)
	if err != nil {
		return err
	}
	tagged, err := tagIDs(ctx, client, nodes, o.sel.tag, true)
	if err != nil {
		return err
	}
	g.run.tag = o.sel.tag
	if err := o.modes.checkScriptFree(); err != nil {
		return err
	}
	filter := cassandra.Filter(o.keyspaces, o.tables)
	budget := g.limits.restoreBuffers() // shared by every node restored at once
	var (
		missing []string
		outs    []restoreOutput
		failed  []string
		mu      sync.Mutex
		group   errgroup.Group
	)
	group.SetLimit(restoreNodesAtOnce)
	for _, n := range nodes {
		ids := tagged[n.Name]
		if len(ids) == 0 {
			missing = append(missing, n.Name)
			continue
		}
		id := ids[len(ids)-1] // the newest
		group.Go(func() error {
			out, err := restoreOneNode(cmd, g, o, client, n, id, filepath.Join(o.target, n.Name), filter, budget)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", n.Name, err))
			} else {
				outs = append(outs, out)
			}
			return nil // a failed node does not stop the others
		})
	}
	_ = group.Wait()
	if o.output == "json" {
		if err := writeJSON(g.stdout, outs); err != nil {
			return err
		}
	} else {
		for _, out := range outs {
			fmt.Fprintf(g.stdout, "restored backup %s (tag %s) of %s/%s: %s, %s, verified, into %s\n",
				out.BackupID, out.Tag, out.Cluster, out.Node, units.Plural(out.Files, "file"), units.Human(out.Bytes), out.Target)
			if out.Topology != nil {
				// The first line: the node's place (its tokens are in the
				// manifest and in --output json).
				line, _, _ := strings.Cut(out.Topology.Describe(), "\n")
				fmt.Fprintf(g.stdout, "  %s\n", line)
			}
		}
		if len(outs) > 0 && o.modes.loadScript == "" {
			fmt.Fprintf(g.stdout, "load each node's tables into the new cluster with sstableloader (or let restore write the script: --load-script FILE --loader sstableloader --loader-hosts HOSTS), e.g.:\n"+
				"  sstableloader -d HOST1,HOST2 %s\n", filepath.Join(o.target, "NODE", "KEYSPACE", "TABLE-ID"))
		}
	}
	if len(outs) > 0 && o.modes.loadScript != "" {
		msg, err := o.modes.writeClusterScript(o, outs)
		if err != nil {
			return err
		}
		if o.output != "json" {
			fmt.Fprint(g.stdout, msg)
		}
	}
	switch {
	case len(failed) > 0:
		return fmt.Errorf("restore of %s failed: %s", units.Plural(len(failed), "node"), strings.Join(failed, "; "))
	case len(missing) > 0:
		return notFound(fmt.Errorf("%s: no complete backup of tag %q on %s: %s (the others are restored)",
			catalog.ErrNoBackup, o.sel.tag, units.Plural(len(missing), "node"), strings.Join(missing, ", ")))
	}
	return nil
}

// restoreOneNode restores backup id of node into target.
func restoreOneNode(cmd *cobra.Command, g *globalOptions, o *restoreOptions, client *transfer.Client, node manifest.Node, id, target string,
	filter func(string) bool, b *budget.Budget) (restoreOutput, error) {
	ctx := cmd.Context()
	out := restoreOutput{Cluster: node.Cluster, Node: node.Name, Tag: o.sel.tag, BackupID: id, Target: target}
	// Read file by file from a local copy: a cluster's nodes of a million
	// files each restore on one host.
	src, err := catalog.Fetch(ctx, client, node, id, "")
	if err != nil {
		return out, err
	}
	defer src.Close()
	m := src.Manifest()
	start := time.Now()
	res, err := restore.RunSource(ctx, client, node, src, restore.Options{
		Target: target, Force: o.force, Concurrency: g.concurrency, Filter: filter,
		Logger: g.logger.With("node", node.Name, "tag", m.Tag, "id", m.ID),
		Budget: b, Buffered: !o.directIO, FollowSymlinks: o.follow,
	})
	if err != nil {
		return out, err
	}
	out.Kind, out.Files, out.Bytes, out.DurationSeconds = m.Kind, res.Files, res.Bytes, time.Since(start).Seconds()
	if m.Kind == "cassandra" {
		if out.tables, err = tablesOf(src, filter); err != nil {
			return out, err
		}
	}
	if t, ok := cassandra.TopologyFromMeta(m.Meta); ok && m.Kind == "cassandra" {
		out.Topology = &t
	}
	return out, nil
}

// tablesOf adds up a backup's table directories (the files the filter
// keeps), a batch of files at a time: a table's totals, not its files, are
// held.
func tablesOf(src restore.Source, keep func(string) bool) ([]cassandra.TableDir, error) {
	byDir := map[string]*cassandra.TableDir{}
	var batch []cassandra.BackupFile
	add := func() {
		for _, t := range cassandra.Tables(batch) {
			if sum := byDir[t.Dir()]; sum != nil {
				sum.Files += t.Files
				sum.Bytes += t.Bytes
			} else {
				byDir[t.Dir()] = &t
			}
		}
		batch = batch[:0]
	}
	for f, err := range src.Files() {
		if err != nil {
			return nil, err
		}
		if keep == nil || keep(f.Path) {
			batch = append(batch, cassandra.BackupFile{Path: f.Path, Size: f.Size})
		}
		if len(batch) == 4096 {
			add()
		}
	}
	add()
	out := make([]cassandra.TableDir, 0, len(byDir))
	for _, t := range byDir {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b cassandra.TableDir) int { return strings.Compare(a.Dir(), b.Dir()) })
	return out, nil
}
