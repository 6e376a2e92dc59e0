package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/hbase"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/units"
)

type restoreOptions struct {
	sel       selectFlags
	target    string
	force     bool
	keyspaces []string
	tables    []string
	directIO  bool
	follow    bool
	allNodes  bool
	output    string
	modes     restoreModes
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	o := &restoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a node's backup into a directory, verified",
		Example: `  s3bak restore --bucket backups --cluster prod --node cass-3 --target /var/lib/cassandra/restore
  s3bak restore --bucket backups --cluster prod --node cass-3 --backup 20261125T020000Z.123 --keyspace shop --target /restore
  s3bak restore --bucket backups --cluster prod --node cass-3 --tag daily-2026-11-25 --target /restore
  s3bak restore --bucket backups --cluster prod --node cass-9 --from-node cass-3 --tag daily-2026-11-25 --target /restore
  s3bak restore --bucket backups --cluster prod --all-nodes --tag daily-2026-11-25 --target /restore
  s3bak restore --bucket backups --cluster prod --node cass-9 --from-node cass-3 --tag daily-2026-11-25 --into-data-dirs --data-dir /data1 --data-dir /data2
  s3bak restore --bucket backups --cluster prod --node cass-3 --tag daily-2026-11-25 --target /restore --load-script /restore/load.sh
  s3bak restore --bucket backups --cluster prod --node cass-3 --tag daily-2026-11-25 --target /restore --load-script load.sh --loader sstableloader --loader-hosts 10.0.0.1,10.0.0.2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRestore(cmd, g, o) },
	}
	f := cmd.Flags()
	o.sel.register(cmd, true)
	f.StringVar(&o.output, "output", "table", "table, or json: one summary object")
	f.StringVar(&o.target, "target", "", "directory to restore into")
	f.BoolVar(&o.force, "force", false, "replace files that already exist in the target")
	f.BoolVar(&o.directIO, "direct-io", true, "write files of 1 MiB and more with O_DIRECT: no copy into the page cache, and the database's cached pages stay (falls back by itself where the file system refuses it)")
	f.BoolVar(&o.follow, "follow-symlinks", false, "follow directories under the target that are symbolic links (data directories spread over disks); without it such a link is refused and nothing is written outside the target")
	f.BoolVar(&o.allNodes, "all-nodes", false, "with --tag: restore every node's backup of that tag into TARGET/<node>/ (a cluster's night, for sstableloader)")
	f.StringArrayVar(&o.keyspaces, "keyspace", nil, "only this keyspace (repeatable)")
	f.StringArrayVar(&o.tables, "table", nil, "only this table, as TABLE or KEYSPACE.TABLE (repeatable)")
	o.modes.register(cmd)
	return cmd
}

func runRestore(cmd *cobra.Command, g *globalOptions, o *restoreOptions) error {
	ctx := cmd.Context()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if err := o.modes.check(cmd, o.target, o.allNodes); err != nil {
		return err
	}
	if err := o.sel.check(); err != nil {
		return err
	}
	if o.modes.intoDataDirs {
		return runRestoreIntoDataDirs(cmd, g, o)
	}
	if o.target == "" {
		return &usageError{fmt.Errorf("no --target directory (or --into-data-dirs)")}
	}
	if o.allNodes {
		return runRestoreAll(cmd, g, o)
	}
	local, client, fctx, checked, err := g.openBeside(ctx)
	if err != nil {
		return err
	}
	node := o.sel.node(local)
	// The manifest is read file by file from a local copy, as often as
	// the restore needs: a million files are never in memory at once.
	src, err := o.sel.fetch(fctx, client, node)
	if cerr := checked(); cerr != nil {
		if err == nil {
			src.Close()
		}
		return cerr
	}
	if err != nil {
		return err
	}
	defer src.Close()
	m := src.Manifest()
	g.run.tag, g.run.id = m.Tag, m.ID
	if err := o.modes.cassandraOnly(m); err != nil {
		return err
	}
	filter := cassandra.Filter(o.keyspaces, o.tables)
	var script *cassandra.LoadScript
	if o.modes.loadScript != "" {
		tables, err := tablesOf(src, filter)
		if err != nil {
			return err
		}
		if script, err = o.modes.prepareLoadScript(ctx, m, tables, o.target); err != nil {
			return err
		}
	}
	total, files, err := restoreTotals(src, filter)
	if err != nil {
		return err
	}
	bar := g.progress(total, files, "restore")
	start := time.Now()
	logger := g.runLogger(start, "cluster", m.Cluster, "node", m.Node, "tag", m.Tag, "id", m.ID)
	if from := o.sel.describeFrom(local); from != "" {
		logger.Info("restoring another node's backup", "from_node", node.Name, "local_node", local.Name, "id", m.ID)
	}
	res, err := restore.RunSource(ctx, client, node, src, restore.Options{
		Target: o.target, Force: o.force, Concurrency: g.concurrency, Filter: filter, Logger: logger, Progress: bar,
		Budget: g.limits.restoreBuffers(), Buffered: !o.directIO, FollowSymlinks: o.follow,
	})
	bar.Finish()
	if errors.Is(err, restore.ErrNoMatch) {
		return notFound(fmt.Errorf("%w (keyspaces in it: %s)", err, strings.Join(keyspacesOf(src), ", ")))
	}
	if err != nil {
		return err
	}
	g.run.stats = &runStats{files: res.Files, bytesRead: res.Bytes}
	return o.report(g, m, res, script, local, time.Since(start))
}

// report tells what a restore brought back and how the database takes it:
// the load steps (or the load script written), and the node's topology.
func (o *restoreOptions) report(g *globalOptions, m *manifest.Manifest, res *restore.Result, script *cassandra.LoadScript, local manifest.Node, elapsed time.Duration) error {
	steps, written, err := o.loadSteps(m, res, script)
	if err != nil {
		return err
	}
	var topology *cassandra.Topology
	if t, ok := cassandra.TopologyFromMeta(m.Meta); ok && m.Kind == "cassandra" {
		topology = &t
	}
	if o.output == "json" {
		return writeJSON(g.stdout, restoreOutput{
			Cluster: m.Cluster, Node: m.Node, Kind: m.Kind, Tag: m.Tag, BackupID: m.ID, Target: o.target,
			DurationSeconds: elapsed.Seconds(), Files: res.Files, Bytes: res.Bytes, LoadSteps: steps, Topology: topology,
			LoadScript: written,
		})
	}
	tag := ""
	if m.Tag != "" {
		tag = fmt.Sprintf(" (tag %s)", m.Tag)
	}
	fmt.Fprintf(g.stdout, "restored backup %s%s of %s/%s%s: %s, %s, verified, into %s in %s\n",
		m.ID, tag, m.Cluster, m.Node, o.sel.describeFrom(local), units.Plural(res.Files, "file"), units.Human(res.Bytes), o.target, elapsed.Round(time.Millisecond))
	if topology != nil {
		fmt.Fprint(g.stdout, topology.Describe())
	}
	_, err = fmt.Fprint(g.stdout, steps)
	return err
}

// loadSteps are what to do next with the restored files, and the load
// script written instead when one was asked for (its path, or "").
func (o *restoreOptions) loadSteps(m *manifest.Manifest, res *restore.Result, script *cassandra.LoadScript) (steps, written string, err error) {
	if res.Files == 0 { // an empty backup: nothing to load
		return "", "", nil
	}
	switch {
	case script != nil:
		if steps, err = o.modes.writeLoadScript(script); err != nil {
			return "", "", err
		}
		return steps, o.modes.loadScript, nil
	case m.Kind == "cassandra":
		return strings.TrimLeft(cassandra.RestoreSteps(o.target, res.Dirs), "\n"), "", nil
	case m.Kind == "hbase":
		snaps, err := hbase.SnapshotsFromMeta(m.Meta)
		if err != nil {
			return "", "", fmt.Errorf("restored, but the manifest's HBase snapshot list is unreadable: %w", err)
		}
		return hbase.Where(o.target, o.modes.hbaseRoot) + hbase.RestoreSteps(snaps, o.target), "", nil
	}
	return "", "", nil
}

// restoreTotals are the files a restore brings back and their bytes: the
// manifest's totals, or with a filter a pass over its files.
func restoreTotals(src *catalog.Local, filter func(string) bool) (int64, int, error) {
	m := src.Manifest()
	if filter == nil {
		return m.RawBytes(), int(m.Count()), nil
	}
	var total int64
	files := 0
	for f, err := range src.Files() {
		if err != nil {
			return 0, 0, err
		}
		if filter(f.Path) {
			total += f.Size
			files++
		}
	}
	return total, files, nil
}

// keyspacesOf lists the keyspaces (first path elements) of a backup's
// files (in path order, so each keyspace's files come together).
func keyspacesOf(src restore.Source) []string {
	var ks []string
	for f, err := range src.Files() {
		if err != nil {
			break
		}
		k, _, _ := strings.Cut(f.Path, "/")
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}
