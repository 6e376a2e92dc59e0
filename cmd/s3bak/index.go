package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/units"
)

func newIndexCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "index",
		Short: "Maintain the node's backup summaries (what list reads)",
	}
	var lf lockFlags
	rebuild := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild the node's backup summaries from its manifests",
		Long: `The summaries are a cache of the manifests' headers: list reads them instead
of every manifest. Backups and purges keep them up to date, and list reads
the header of any manifest they lack; rebuild makes them anew on demand,
e.g. after manifests were copied or deleted by hand. It holds the node's lock.

What a backup skips reading and uploading comes from the node's last backup
and the checkpoints of killed runs, not from a separate index.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runIndexRebuild(cmd.Context(), g, lf) },
	}
	lf.register(rebuild)
	cmd.AddCommand(rebuild)
	return cmd
}

func runIndexRebuild(ctx context.Context, g *globalOptions, lf lockFlags) error {
	node, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	var sums []catalog.Summary
	err = lock.Run(ctx, client, node.Root()+lock.Key, lock.Info{Op: "index rebuild"},
		lock.Options{Lease: lf.lease, Break: lf.breakLock, Logger: g.logger},
		func(ctx context.Context, l *lock.Lock) (err error) {
			if err := l.Fence(ctx); err != nil {
				return err
			}
			sums, err = catalog.RebuildSummaries(ctx, client, node)
			return err
		})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stdout, "summaries of %s/%s rebuilt: %s\n", node.Cluster, node.Name, units.Plural(len(sums), "backup"))
	return err
}
