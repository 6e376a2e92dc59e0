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
		Short: "Maintain the node's index (what is stored, and a summary of every backup)",
	}
	var lf lockFlags
	rebuild := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild the node's index from its manifests",
		Long: `The index is a cache of the manifests: backups use it to decide what to
upload, list to summarise backups without reading every manifest. A backup
rebuilds a missing or damaged index by itself; rebuild does it on demand,
e.g. after manifests were copied or deleted by hand. It holds the node's lock.`,
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
	x, err := catalog.Rebuild(ctx, client, node, lock.Options{Lease: lf.lease, Break: lf.breakLock, Logger: g.logger})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stdout, "index of %s/%s rebuilt: %s, %s\n", node.Cluster, node.Name,
		units.Plural(len(x.Summaries()), "backup"), units.Plural(x.Len(), "stored content"))
	return err
}
