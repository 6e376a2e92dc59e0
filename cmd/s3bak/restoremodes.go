package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

// restoreModes are restore's flags for the runbooks (issue #16): into a
// stopped node's data directories, or a reviewed load script.
type restoreModes struct {
	intoDataDirs bool
	dataDirs     []string
	intoLiveIDs  bool
	pidFile      string
	nativeAddr   string
	loadScript   string
	loader       string
	loaderHosts  []string
	version      string
	nodetool     string
	hbaseRoot    string
}

func (r *restoreModes) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&r.intoDataDirs, "into-data-dirs", false, "Cassandra: restore into this stopped node's table directories under --data-dir (instead of --target); refused while Cassandra runs unless --force")
	f.StringArrayVar(&r.dataDirs, "data-dir", nil, "Cassandra data directory (repeat for every data_file_directories entry): for --into-data-dirs, and to find the live table directories of --load-script with Cassandra 3.x")
	f.BoolVar(&r.intoLiveIDs, "into-live-table-ids", false, "with --into-data-dirs: restore a table whose live directory has another table id (the table was created again) into that live directory")
	f.StringVar(&r.pidFile, "cassandra-pid-file", cassandra.DefaultPIDFile, "with --into-data-dirs: Cassandra runs if this file names a live process (empty: not checked)")
	f.StringVar(&r.nativeAddr, "cassandra-native-address", cassandra.DefaultNativeAddress, "with --into-data-dirs: Cassandra runs if this address answers (empty: not checked)")
	f.StringVar(&r.loadScript, "load-script", "", "Cassandra: write a shell script that loads the restored files (to review, then run with bash) instead of printing the steps")
	f.StringVar(&r.loader, "loader", cassandra.LoaderNodetool, "with --load-script: nodetool (import, or refresh on 3.x, on this node) or sstableloader (to a cluster of another size or token layout)")
	f.StringSliceVar(&r.loaderHosts, "loader-hosts", nil, "with --loader sstableloader: the hosts of the cluster to load into (sstableloader -d)")
	f.StringVar(&r.version, "cassandra-version", "", "with --load-script: the Cassandra version loaded into, e.g. 3.11 or 4.1 (default: the backup's recorded version)")
	f.StringVar(&r.nodetool, "nodetool", "nodetool", "nodetool command and fixed arguments, for --load-script (this host's tokens, and the script's calls)")
	f.StringVar(&r.hbaseRoot, "hbase-root", "", "HBase: the target cluster's hbase.rootdir (hdfs://… or a mounted path), written into the printed steps")
}

// check refuses combinations that mean nothing, before anything is read.
func (r *restoreModes) check(cmd *cobra.Command, target string, allNodes bool) error {
	switch {
	case r.intoDataDirs && (target != "" || allNodes || r.loadScript != ""):
		return &usageError{errors.New("--into-data-dirs restores into the node's data directories: not with --target, --all-nodes or --load-script")}
	case r.intoDataDirs && len(r.dataDirs) == 0:
		return &usageError{errors.New("--into-data-dirs needs --data-dir for every data_file_directories entry of cassandra.yaml")}
	case r.intoLiveIDs && !r.intoDataDirs:
		return &usageError{errors.New("--into-live-table-ids goes with --into-data-dirs")}
	case r.loadScript != "" && allNodes && r.loader != cassandra.LoaderSSTableLoader:
		return &usageError{errors.New("--all-nodes --load-script loads a whole cluster's night into another cluster: give --loader sstableloader --loader-hosts HOSTS")}
	case r.loader != cassandra.LoaderNodetool && r.loader != cassandra.LoaderSSTableLoader:
		return &usageError{fmt.Errorf("--loader %q: want nodetool or sstableloader", r.loader)}
	case r.loader == cassandra.LoaderSSTableLoader && len(r.loaderHosts) == 0:
		return &usageError{errors.New("--loader sstableloader needs --loader-hosts: hosts of the cluster to load into")}
	case r.loadScript == "" && (cmd.Flags().Changed("loader") || len(r.loaderHosts) > 0 || r.version != ""):
		return &usageError{errors.New("--loader, --loader-hosts and --cassandra-version go with --load-script")}
	}
	if r.version != "" && cassandra.MajorVersion(r.version) == 0 {
		return &usageError{fmt.Errorf("--cassandra-version %q: want a version such as 3.11 or 4.1", r.version)}
	}
	return nil
}

// cassandraOnly refuses the Cassandra modes for a backup of another kind.
func (r *restoreModes) cassandraOnly(m *manifest.Manifest) error {
	if m.Kind != "cassandra" && (r.intoDataDirs || r.loadScript != "") {
		return &usageError{fmt.Errorf("backup %s is of %s: --into-data-dirs and --load-script are for Cassandra backups", m.ID, m.Kind)}
	}
	return nil
}

// runRestoreIntoDataDirs restores a Cassandra backup into the stopped
// node's table directories: one restore through a view of symbolic links
// (cassandra.View), so every table lands in its data directory verified,
// all or nothing, and no existing file is replaced without --force.
func runRestoreIntoDataDirs(cmd *cobra.Command, g *globalOptions, o *restoreOptions) error {
	ctx := cmd.Context()
	if err := o.modes.refuseRunning(o.force); err != nil {
		return err
	}
	local, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	node := o.sel.node(local)
	src, err := o.sel.fetch(ctx, client, node) // read file by file, as often as needed
	if err != nil {
		return err
	}
	defer src.Close()
	m := src.Manifest()
	g.run.tag, g.run.id = m.Tag, m.ID
	if err := o.modes.cassandraOnly(m); err != nil {
		return err
	}
	keep := cassandra.IntoDataDirsFilter(cassandra.Filter(o.keyspaces, o.tables), o.keyspaces)
	tables, err := tablesOf(src, keep)
	if err != nil {
		return err
	}
	if len(tables) == 0 {
		return notFound(fmt.Errorf("backup %s has no sstable to restore into the data directories: %w (keyspaces in it: %s)",
			m.ID, restore.ErrNoMatch, strings.Join(keyspacesOf(src), ", ")))
	}
	place, err := cassandra.PlaceTables(o.modes.dataDirs, tables, o.modes.intoLiveIDs)
	if err != nil {
		return err
	}
	if err := place.MismatchError(); err != nil {
		return err
	}
	res, elapsed, err := restoreThroughView(ctx, g, o, client, node, src, place, keep)
	if err != nil {
		return err
	}
	_, kept, err := restoreTotals(src, cassandra.Filter(o.keyspaces, o.tables))
	if err != nil {
		return err
	}
	return o.modes.reportDataDirs(g, o, local, m, place, tables, res, elapsed, kept)
}

// refuseRunning stops a restore into the data directories of a node whose
// Cassandra runs: it would not see the files, and could write sstables of
// the same names.
func (r *restoreModes) refuseRunning(force bool) error {
	why, err := cassandra.RunningCheck{PIDFile: r.pidFile, NativeAddress: r.nativeAddr}.Running()
	if err != nil {
		return err
	}
	if why == "" || force {
		return nil
	}
	return fmt.Errorf("not restoring into the data directories: Cassandra is running on this host (%s): stop it (nodetool drain, then stop the service) before restoring into its data directories, or pass --force if it is another Cassandra than the one of --data-dir", why)
}

func restoreThroughView(ctx context.Context, g *globalOptions, o *restoreOptions, client *transfer.Client, node manifest.Node,
	src *catalog.Local, place *cassandra.Placement, keep func(string) bool) (*restore.Result, time.Duration, error) {
	m := src.Manifest()
	view, err := cassandra.NewView(place)
	if err != nil {
		return nil, 0, err
	}
	total, files, err := restoreTotals(src, keep)
	if err != nil {
		return nil, 0, err
	}
	bar := g.progress(total, files, "restore")
	start := time.Now()
	logger := g.runLogger(start, "cluster", m.Cluster, "node", m.Node, "tag", m.Tag, "id", m.ID)
	res, err := restore.RunSource(ctx, client, node, src, restore.Options{
		Target: view.Dir, Force: o.force, Concurrency: g.concurrency, Filter: keep, Logger: logger, Progress: bar,
		Budget: g.limits.restoreBuffers(), Buffered: !o.directIO,
		FollowSymlinks: true, // the view is links to the table directories
	})
	bar.Finish()
	view.Close(err != nil)
	if errors.Is(err, restore.ErrExists) {
		// The engine's advice (an empty directory) does not fit a node.
		return nil, 0, fmt.Errorf("restore into the data directories: %w; nothing was replaced. The node's table directories hold files of the backup's names: "+
			"move the tables' sstables away first (a restore replaces the node's data), or pass --force to replace them", err)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("restore into the data directories: %w", err)
	}
	g.run.stats = &runStats{files: res.Files, bytesRead: res.Bytes}
	return res, time.Since(start), nil
}

// reportDataDirs says where each table went and what to do before
// Cassandra starts: the tokens (initial_token), the owner of the files.
func (r *restoreModes) reportDataDirs(g *globalOptions, o *restoreOptions, local manifest.Node, m *manifest.Manifest,
	place *cassandra.Placement, tables []cassandra.TableDir, res *restore.Result, elapsed time.Duration, kept int) error {
	topo, hasTopo := cassandra.TopologyFromMeta(m.Meta)
	if o.output == "json" {
		out := restoreOutput{Cluster: m.Cluster, Node: m.Node, Kind: m.Kind, Tag: m.Tag, BackupID: m.ID,
			DurationSeconds: elapsed.Seconds(), Files: res.Files, Bytes: res.Bytes, TableDirs: place.Dir}
		if hasTopo {
			out.Topology = &topo
		}
		return writeJSON(g.stdout, out)
	}
	w := g.stdout
	fmt.Fprintf(w, "restored backup %s%s of %s/%s%s: %s, %s, verified, into the table directories of %s in %s\n",
		m.ID, tagNote(m.Tag), m.Cluster, m.Node, o.sel.describeFrom(local), units.Plural(res.Files, "file"), units.Human(res.Bytes),
		strings.Join(place.DataDirs, ", "), elapsed.Round(time.Millisecond))
	for _, t := range tables {
		fmt.Fprintf(w, "  %s → %s\n", t.Name(), place.Dir[t.Dir()])
	}
	if skipped := kept - res.Files; skipped > 0 {
		fmt.Fprintf(w, "not put into live directories: %s that are not sstables (manifest.json, schema.cql) or of the node-local keyspaces (system, system_schema: name them with --keyspace to restore them); restore with --target to see them\n",
			units.Plural(skipped, "file"))
	}
	fmt.Fprintln(w, "before Cassandra starts on this host:")
	fmt.Fprintln(w, "  chown -R the restored files to Cassandra's user if this restore ran as another user")
	if hasTopo {
		first, _, _ := strings.Cut(topo.Describe(), "\n") // the rest is the initial_token line, below
		fmt.Fprintf(w, "  %s\n", first)
	}
	if line := topo.InitialToken(); line != "" {
		fmt.Fprintf(w, "  in cassandra.yaml:\n    num_tokens: %d\n    %s\n", len(topo.Tokens), line)
	} else {
		fmt.Fprintln(w, "  the backup recorded no tokens: give this host the backed-up node's tokens (initial_token) yourself, from nodetool ring of the cluster")
	}
	return nil
}

func tagNote(tag string) string {
	if tag == "" {
		return ""
	}
	return fmt.Sprintf(" (tag %s)", tag)
}

// prepareLoadScript plans the load script before anything is restored,
// so that what it needs (this host's tokens, 3.x's live directories, a
// free file name) fails the command early.
func (r *restoreModes) prepareLoadScript(ctx context.Context, m *manifest.Manifest, tables []cassandra.TableDir, target string) (*cassandra.LoadScript, error) {
	if err := r.checkScriptFree(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return nil, err
	}
	s := &cassandra.LoadScript{
		Backup:    fmt.Sprintf("backup %s%s of %s/%s", m.ID, tagNote(m.Tag), m.Cluster, m.Node),
		Generated: fmt.Sprintf("%s at %s", toolVersion(), time.Now().UTC().Format(time.RFC3339)),
		Target:    abs, Tables: tables,
		Loader: r.loader, Hosts: r.loaderHosts,
	}
	if s.Loader == cassandra.LoaderSSTableLoader {
		return s, nil
	}
	if s.Nodetool, err = cassandra.SplitCommand(r.nodetool); err != nil {
		return nil, &usageError{fmt.Errorf("--nodetool: %w", err)}
	}
	topo, _ := cassandra.TopologyFromMeta(m.Meta)
	s.Major, s.VersionOf = cassandra.MajorVersion(r.version), "--cassandra-version "+r.version
	if s.Major == 0 {
		s.Major, s.VersionOf = cassandra.MajorVersion(topo.Version), "the backup's node ran "+topo.Version
	}
	if s.Major == 0 {
		s.Major, s.VersionOf = 4, "version unknown, taken as 4.0+: give --cassandra-version 3 for 3.x"
	}
	if s.Major == 3 {
		if len(r.dataDirs) == 0 {
			return nil, &usageError{errors.New("a load script for Cassandra 3.x copies into the live table directories: give --data-dir for every data_file_directories entry")}
		}
		if s.LiveDirs, err = cassandra.LiveDirsForRefresh(r.dataDirs, s.Tables); err != nil {
			return nil, err
		}
	}
	s.Tokens = r.hostTokens(ctx, s.Nodetool, topo.Tokens)
	return s, nil
}

// hostTokens compares this host's tokens (nodetool info -T) with the
// backup's: nodetool import checks that every row belongs to the node.
func (r *restoreModes) hostTokens(ctx context.Context, words, backup []string) cassandra.TokenMatch {
	out, err := cassandra.Nodetool{Command: words, Timeout: cassandra.DefaultTopologyTimeout, MaxOutput: 8 << 20}.Run(ctx, "info", "-T")
	if err != nil {
		m := cassandra.CompareTokens(backup, nil)
		m.Why = "nodetool info -T: " + err.Error()
		return m
	}
	return cassandra.CompareTokens(backup, cassandra.ParseInfo(out).Tokens)
}

// writeLoadScript writes s to --load-script, never over a file.
func (r *restoreModes) writeLoadScript(s *cassandra.LoadScript) (string, error) {
	f, err := os.OpenFile(r.loadScript, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return "", fmt.Errorf("write the load script (the restored files are in %s): %w", s.Target, err)
	}
	_, err = f.WriteString(s.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write the load script %s: %w", r.loadScript, err)
	}
	return fmt.Sprintf("load script for %s written to %s (%s): review it, then run it: bash %s\n",
		units.Plural(s.TableCount(), "table"), r.loadScript, s.Loader, cassandra.Quote(r.loadScript)), nil
}

// checkScriptFree refuses, before anything is restored, a --load-script
// that exists: the script is written once, never over a file.
func (r *restoreModes) checkScriptFree() error {
	if r.loadScript == "" {
		return nil
	}
	if _, err := os.Lstat(r.loadScript); err == nil {
		return &usageError{fmt.Errorf("--load-script %s exists: remove it or choose another name", r.loadScript)}
	}
	return nil
}

// writeClusterScript writes the sstableloader script of restore
// --all-nodes: every restored node's tables, from TARGET/<node>/.
func (r *restoreModes) writeClusterScript(o *restoreOptions, outs []restoreOutput) (string, error) {
	abs, err := filepath.Abs(o.target)
	if err != nil {
		return "", err
	}
	slices.SortFunc(outs, func(a, b restoreOutput) int { return strings.Compare(a.Node, b.Node) })
	s := &cassandra.LoadScript{
		Backup:    fmt.Sprintf("the backups of tag %s of %s of cluster %s", o.sel.tag, units.Plural(len(outs), "node"), outs[0].Cluster),
		Generated: fmt.Sprintf("%s at %s", toolVersion(), time.Now().UTC().Format(time.RFC3339)),
		Target:    abs, Loader: r.loader, Hosts: r.loaderHosts,
	}
	for _, out := range outs {
		if len(out.tables) > 0 {
			s.Nodes = append(s.Nodes, cassandra.NodeTables{Node: out.Node, Tables: out.tables})
		}
	}
	return r.writeLoadScript(s)
}
