package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/restore"
)

type verifyOptions struct {
	backupID string
	deep     bool
}

func newVerifyCommand(g *globalOptions) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that a backup's objects exist with their recorded sizes (--deep: and checksums)",
		Example: `  s3bak verify --bucket backups --cluster prod --node cass-3
  s3bak verify --bucket backups --cluster prod --node cass-3 --backup 20261125T020000Z --deep`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runVerify(cmd, g, o) },
	}
	cmd.Flags().StringVar(&o.backupID, "backup", "latest", "backup id (see s3bak list)")
	cmd.Flags().BoolVar(&o.deep, "deep", false, "download every object and check its SHA-256 (streaming)")
	return cmd
}

func runVerify(cmd *cobra.Command, g *globalOptions, o *verifyOptions) error {
	ctx := cmd.Context()
	node, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	m, err := catalog.Load(ctx, client, node, o.backupID)
	if err != nil {
		return err
	}
	var bar progressBar = nopBar{}
	if o.deep {
		bar = g.progress(m.RawBytes(), "verify")
	}
	res, err := restore.Verify(ctx, client, node, m, o.deep, g.concurrency, bar)
	bar.Finish()
	if err != nil {
		return err
	}
	how := "sizes"
	if o.deep {
		how = "sizes and SHA-256"
	}
	for _, p := range res.Problems {
		fmt.Fprintf(g.stdout, "PROBLEM %s: %v\n", p.Path, p.Err)
	}
	fmt.Fprintf(g.stdout, "backup %s of %s/%s: %d objects checked (%s), %d problems\n", m.ID, m.Cluster, m.Node, res.Objects, how, len(res.Problems))
	if len(res.Problems) > 0 {
		return fmt.Errorf("backup %s: %d of %d objects failed verification: %w", m.ID, len(res.Problems), res.Objects, restore.ErrVerify)
	}
	return nil
}
