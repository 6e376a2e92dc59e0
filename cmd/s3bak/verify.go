package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

type verifyOptions struct {
	sel         selectFlags
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
  s3bak verify --bucket backups --cluster prod --node cass-3 --tag daily-2026-11-25 --deep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runVerify(cmd, g, o) },
	}
	o.sel.register(cmd, true)
	cmd.Flags().StringVar(&o.output, "output", "table", "table, or json: one summary object")
	cmd.Flags().BoolVar(&o.deep, "deep", false, "download every object and check its SHA-256 (streaming)")
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
	local, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	node := o.sel.node(local)
	m, err := o.sel.load(ctx, client, node)
	if err != nil {
		return err
	}
	g.run.tag, g.run.id = m.Tag, m.ID
	start := time.Now()
	var bar progressBar = nopBar{}
	if o.deep {
		bar = g.progress(m.RawBytes(), "verify")
	}
	// A deep check downloads and decodes as a restore does, from the same
	// share of --max-memory.
	res, err := restore.Verify(ctx, client, node, m, restore.VerifyOptions{
		Deep: o.deep, Concurrency: g.concurrency, Progress: bar, Budget: g.limits.buffers(2),
	})
	bar.Finish()
	if res == nil {
		return err
	}
	out := verifyOutput{Cluster: m.Cluster, Node: m.Node, Tag: m.Tag, BackupID: m.ID, Deep: o.deep,
		Files: len(m.Files), Objects: res.Objects, Bytes: res.Bytes, Problems: []verifyProblem{}}
	for _, p := range res.Problems {
		out.Problems = append(out.Problems, verifyProblem{Path: p.Path, Error: p.Err.Error()})
	}
	// The summary is printed whatever the verdict: with --output json the
	// one object, in a table the lines as they come.
	asJSON := o.output == "json"
	done := func(err error) error {
		out.DurationSeconds, out.OK = time.Since(start).Seconds(), err == nil
		if err == nil {
			g.run.stats = &runStats{files: len(m.Files), bytesRead: res.Bytes, bytesStored: m.StoredBytes()}
		}
		if asJSON {
			if werr := writeJSON(g.stdout, out); werr != nil && err == nil {
				err = werr
			}
		}
		return err
	}
	if !asJSON {
		for _, p := range res.Problems {
			fmt.Fprintf(g.stdout, "PROBLEM %s: %v\n", p.Path, p.Err)
		}
	}
	// err now says that an object could not be checked (the server or the
	// network failed): exit 1, unless what was checked found damage.
	if err != nil {
		if len(res.Problems) > 0 {
			return done(fmt.Errorf("backup %s: %s failed verification before it stopped: %w (%v)", m.ID, units.Plural(len(res.Problems), "object"), restore.ErrVerify, err))
		}
		return done(err)
	}
	how := "sizes"
	if o.deep {
		how = "sizes and SHA-256"
	}
	if !asJSON {
		fmt.Fprintf(g.stdout, "backup %s of %s/%s: %s checked (%s), %s\n", m.ID, m.Cluster, m.Node,
			units.Plural(res.Objects, "stored content"), how, units.Plural(len(res.Problems), "problem"))
	}
	if len(res.Problems) > 0 {
		return done(fmt.Errorf("backup %s: %d of %s failed verification: %w", m.ID, len(res.Problems), units.Plural(res.Objects, "object"), restore.ErrVerify))
	}
	if o.skipCatalog {
		return done(nil)
	}
	out.Catalog = &catalogOutput{}
	return done(verifyCatalog(ctx, g, client, node, out.Catalog, asJSON))
}

// verifyCatalog checks every backup of the node: a referenced object that
// is gone fails; orphans and unfinished uploads are reported (purge
// removes them).
func verifyCatalog(ctx context.Context, g *globalOptions, c *transfer.Client, node manifest.Node, out *catalogOutput, quiet bool) error {
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
			fmt.Fprintf(g.stdout, "MISSING backup %s references s3://%s/%s, which does not exist\n", id, c.Bucket, k)
		}
	}
	for _, o := range a.Orphans {
		fmt.Fprintf(g.stdout, "ORPHAN s3://%s/%s (%s, %s): no backup references it\n", c.Bucket, o.Key, units.Human(o.Size), o.LastModified.UTC().Format(time.RFC3339))
	}
	for _, u := range a.Uploads {
		fmt.Fprintf(g.stdout, "UNFINISHED multipart upload of s3://%s/%s started %s\n", c.Bucket, u.Key, u.Initiated.UTC().Format(time.RFC3339))
	}
	reference := "reference"
	if len(a.Missing) == 1 {
		reference = "references"
	}
	fmt.Fprintf(g.stdout, "node %s/%s: %s, %s; %s %s missing objects; %s (%s); %s\n",
		node.Cluster, node.Name, units.Plural(a.Backups, "backup"), units.Plural(a.Objects, "object"),
		units.Plural(len(a.Missing), "backup"), reference, units.Plural(len(a.Orphans), "orphan"), units.Human(a.OrphanBytes),
		units.Plural(len(a.Uploads), "unfinished upload"))
	if len(a.Missing) > 0 {
		return fmt.Errorf("%s of node %s %s objects that are gone and cannot be restored: %w",
			units.Plural(len(a.Missing), "backup"), node.Name, reference, restore.ErrVerify)
	}
	return nil
}
