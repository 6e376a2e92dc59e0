package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

type verifyOptions struct {
	sel         selectFlags
	allNodes    bool
	deep        bool
	skipCatalog bool
	output      string
}

func newVerifyCommand(g *globalOptions) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that a backup's objects exist with their recorded sizes (--deep: and checksums)",
		Example: `  s3bak verify --bucket backups --cluster prod --node cass-3
  s3bak verify --bucket backups --cluster prod --node cass-3 --backup 20261125T020000Z.123 --deep
  s3bak verify --bucket backups --cluster prod --node cass-3 --tag daily-2026-11-25 --deep
  s3bak verify --bucket backups --cluster prod --all-nodes --deep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runVerify(cmd, g, o) },
	}
	o.sel.register(cmd, true)
	cmd.Flags().StringVar(&o.output, "output", "table", "table, or json: one summary object")
	cmd.Flags().BoolVar(&o.deep, "deep", false, "download every object and check its SHA-256 (streaming)")
	cmd.Flags().BoolVar(&o.allNodes, "all-nodes", false, "check every node of the cluster (its newest backup, or its newest of --tag), a few at once; exit 5 if any fails verification")
	cmd.Flags().BoolVar(&o.skipCatalog, "skip-catalog", false, "do not check the node's whole catalog (every manifest's objects present, orphans, unfinished uploads)")
	return cmd
}

func runVerify(cmd *cobra.Command, g *globalOptions, o *verifyOptions) error {
	ctx := cmd.Context()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if err := o.sel.check(); err != nil {
		return err
	}
	if o.allNodes {
		return runVerifyAll(cmd, g, o)
	}
	local, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	out, m, err := verifyNode(ctx, g, client, o.sel.node(local), o, g.stdout, true)
	if m == nil {
		return err
	}
	g.run.tag, g.run.id = m.Tag, m.ID
	if err == nil {
		g.run.stats = &runStats{files: int(m.Count()), bytesRead: out.Bytes, bytesStored: m.StoredBytes()}
	}
	if o.output == "json" {
		if werr := writeJSON(g.stdout, out); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// verifyNode checks the selected backup of node (and, unless
// --skip-catalog, the node's whole catalog), writing its lines to w unless
// the output is JSON, and returns its summary; the manifest is nil when
// the backup could not be read at all.
func verifyNode(ctx context.Context, g *globalOptions, client *transfer.Client, node manifest.Node, o *verifyOptions, w io.Writer, bar bool) (verifyOutput, *manifest.Manifest, error) {
	src, err := o.sel.fetch(ctx, client, node)
	if err != nil {
		return verifyOutput{Cluster: node.Cluster, Node: node.Name, Problems: []verifyProblem{}}, nil, err
	}
	defer src.Close()
	m := src.Manifest()
	start := time.Now()
	var pb progressBar = nopBar{}
	if o.deep && bar {
		pb = g.progress(m.RawBytes(), int(m.Count()), "verify")
	}
	// A deep check downloads and decodes as a restore does, from the same
	// share of --max-memory.
	res, err := restore.VerifySource(ctx, client, node, src, restore.VerifyOptions{
		Deep: o.deep, Concurrency: g.concurrency, Progress: pb, Budget: g.limits.restoreBuffers(),
	})
	pb.Finish()
	out := verifyOutput{Cluster: m.Cluster, Node: m.Node, Tag: m.Tag, BackupID: m.ID, Deep: o.deep,
		Files: int(m.Count()), Problems: []verifyProblem{}}
	if res == nil {
		return out, m, err
	}
	out.Objects, out.Bytes = res.Objects, res.Bytes
	for _, p := range res.Problems {
		out.Problems = append(out.Problems, verifyProblem{Path: p.Path, Error: p.Err.Error()})
	}
	asJSON := o.output == "json"
	done := func(err error) (verifyOutput, *manifest.Manifest, error) {
		out.DurationSeconds, out.OK = time.Since(start).Seconds(), err == nil
		return out, m, err
	}
	if !asJSON {
		for _, p := range res.Problems {
			fmt.Fprintf(w, "PROBLEM %s: %v\n", p.Path, p.Err)
		}
	}
	// err now says that an object could not be checked (the server or the
	// network failed): exit 1, unless what was checked found damage.
	if err != nil {
		if res.Failed > 0 {
			return done(fmt.Errorf("backup %s: %s failed verification before it stopped: %w (%v)", m.ID, units.Plural(res.Failed, "object"), restore.ErrVerify, err))
		}
		return done(err)
	}
	how := "sizes"
	if o.deep {
		how = "sizes and SHA-256"
	}
	if !asJSON {
		fmt.Fprintf(w, "backup %s of %s/%s: %s checked (%s), %s\n", m.ID, m.Cluster, m.Node,
			units.Plural(res.Objects, "stored content"), how, units.Plural(res.Failed, "problem"))
	}
	if res.Failed > 0 {
		return done(fmt.Errorf("backup %s: %d of %s failed verification: %w", m.ID, res.Failed, units.Plural(res.Objects, "object"), restore.ErrVerify))
	}
	out.Retention = checkRetention(ctx, w, client, node, m, src, asJSON, g.concurrency)
	if o.skipCatalog {
		return done(nil)
	}
	out.Catalog = &catalogOutput{}
	return done(verifyCatalog(ctx, w, client, node, out.Catalog, asJSON))
}

// verifyAllOutput is `verify --all-nodes --output json`: every node's
// summary, and whether all of them passed.
type verifyAllOutput struct {
	Cluster string         `json:"cluster"`
	Nodes   []verifyOutput `json:"nodes"`
	Failed  []string       `json:"failed"` // nodes whose check failed, for whatever reason
	OK      bool           `json:"ok"`
}

// runVerifyAll checks every node of the cluster, a few at once, each
// node's selected backup (the newest, or the newest of --tag) and catalog.
// Verification failures anywhere make it exit 5; a node that could not be
// checked (and none failed verification) exit 1.
func runVerifyAll(cmd *cobra.Command, g *globalOptions, o *verifyOptions) error {
	ctx := cmd.Context()
	if o.sel.fromNode != "" || (cmd.Flags().Changed("backup") && o.sel.backupID != "latest") {
		return &usageError{errors.New("--all-nodes checks each node's newest backup, or its newest of --tag: --backup ID and --from-node name one node's")}
	}
	local, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	nodes, err := clusterNodes(ctx, client, local)
	if err != nil {
		return err
	}
	outs := make([]verifyOutput, len(nodes))
	errs := make([]error, len(nodes))
	logs := make([]bytes.Buffer, len(nodes))
	var group errgroup.Group
	group.SetLimit(verifyNodesAtOnce)
	for i, n := range nodes {
		group.Go(func() error {
			outs[i], _, errs[i] = verifyNode(ctx, g, client, n, o, &logs[i], false)
			return nil // each node's error is its own: the others go on
		})
	}
	_ = group.Wait()
	all := verifyAllOutput{Cluster: local.Cluster, Nodes: outs, Failed: []string{}}
	var verifyFailed, otherFailed []string
	for i, n := range nodes {
		if o.output != "json" {
			fmt.Fprintf(g.stdout, "== node %s\n%s", n.Name, logs[i].String())
			if errs[i] != nil {
				fmt.Fprintf(g.stdout, "node %s: %v\n", n.Name, errs[i])
			}
		}
		switch {
		case errs[i] == nil:
		case errors.Is(errs[i], catalog.ErrNoBackup) && o.sel.tag == "":
			// A node with no backup yet (only the records of runs that
			// failed before its first): nothing to verify; status shows it.
			outs[i].OK = true
		case errors.Is(errs[i], restore.ErrVerify):
			verifyFailed = append(verifyFailed, n.Name)
		default:
			otherFailed = append(otherFailed, n.Name)
		}
	}
	all.Failed = append(append(all.Failed, verifyFailed...), otherFailed...)
	all.OK = len(all.Failed) == 0
	if o.output == "json" {
		if err := writeJSON(g.stdout, all); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.stdout, "cluster %s: %s checked, %s failed\n", local.Cluster,
			units.Plural(len(nodes), "node"), units.Plural(len(all.Failed), "node"))
	}
	switch {
	case len(verifyFailed) > 0:
		return fmt.Errorf("%w on %s: %s", restore.ErrVerify, units.Plural(len(verifyFailed), "node"), strings.Join(verifyFailed, ", "))
	case len(otherFailed) > 0:
		return fmt.Errorf("could not verify %s: %s (see each node's error above)", units.Plural(len(otherFailed), "node"), strings.Join(otherFailed, ", "))
	}
	return nil
}

// verifyNodesAtOnce bounds the nodes checked in parallel: each deep check
// takes its own share of --max-memory.
const verifyNodesAtOnce = 4

// verifyCatalog checks every backup of the node: a referenced object that
// is gone fails; orphans and unfinished uploads are reported (purge
// removes them).
func verifyCatalog(ctx context.Context, w io.Writer, c *transfer.Client, node manifest.Node, out *catalogOutput, quiet bool) error {
	a, err := catalog.AuditNode(ctx, c, node)
	if err != nil {
		return fmt.Errorf("check the node's catalog: %w", err)
	}
	*out = catalogOutput{Backups: a.Backups, Objects: a.Objects, Missing: map[string][]string{},
		Orphans: len(a.Orphans), OrphanBytes: a.OrphanBytes, UnfinishedUploads: len(a.Uploads)}
	for id, keys := range a.Missing {
		out.Missing[id] = keys
	}
	if quiet {
		if len(a.Missing) > 0 {
			return fmt.Errorf("%s of node %s reference objects that are gone and cannot be restored: %w",
				units.Plural(len(a.Missing), "backup"), node.Name, restore.ErrVerify)
		}
		return nil
	}
	for id, keys := range a.Missing {
		for _, k := range keys {
			fmt.Fprintf(w, "MISSING backup %s references s3://%s/%s, which does not exist\n", id, c.Bucket, k)
		}
	}
	for _, o := range a.Orphans {
		fmt.Fprintf(w, "ORPHAN s3://%s/%s (%s, %s): no backup references it\n", c.Bucket, o.Key, units.Human(o.Size), o.LastModified.UTC().Format(time.RFC3339))
	}
	for _, u := range a.Uploads {
		fmt.Fprintf(w, "UNFINISHED multipart upload of s3://%s/%s started %s\n", c.Bucket, u.Key, u.Initiated.UTC().Format(time.RFC3339))
	}
	reference := "reference"
	if len(a.Missing) == 1 {
		reference = "references"
	}
	fmt.Fprintf(w, "node %s/%s: %s, %s; %s %s missing objects; %s (%s); %s\n",
		node.Cluster, node.Name, units.Plural(a.Backups, "backup"), units.Plural(a.Objects, "object"),
		units.Plural(len(a.Missing), "backup"), reference, units.Plural(len(a.Orphans), "orphan"), units.Human(a.OrphanBytes),
		units.Plural(len(a.Uploads), "unfinished upload"))
	if len(a.Missing) > 0 {
		return fmt.Errorf("%s of node %s %s objects that are gone and cannot be restored: %w",
			units.Plural(len(a.Missing), "backup"), node.Name, reference, restore.ErrVerify)
	}
	return nil
}
