package main

import (
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/units"
)

type listOptions struct {
	allNodes bool
	output   string
	tag      string
}

func newListCommand(g *globalOptions) *cobra.Command {
	o := &listOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the backups of this node, or of every node of the cluster (complete, running, incomplete)",
		Example: `  s3bak list --bucket backups --cluster prod
  s3bak list --bucket backups --cluster prod --all-nodes --output json
  s3bak list --bucket backups --cluster prod --all-nodes --tag daily-2026-11-25`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runList(cmd, g, o) },
	}
	cmd.Flags().BoolVar(&o.allNodes, "all-nodes", false, "every node of the cluster")
	cmd.Flags().StringVar(&o.output, "output", "table", "table or json")
	cmd.Flags().StringVar(&o.tag, "tag", "", "only the backups of this snapshot tag")
	commandLineOnlyFlag(cmd, "tag")
	return cmd
}

func runList(cmd *cobra.Command, g *globalOptions, o *listOptions) error {
	ctx := cmd.Context()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	node, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	nodes := []manifest.Node{node}
	if o.allNodes {
		if nodes, err = clusterNodes(ctx, client, node); err != nil {
			return err
		}
	}
	list, err := catalog.List(ctx, client, nodes)
	if err != nil {
		return err
	}
	where := "node " + node.Name
	if o.allNodes {
		where = "cluster " + node.Cluster
	}
	if list, err = filterTag(list, o.tag, where); err != nil {
		return err
	}
	if o.output == "json" {
		if list == nil {
			list = []catalog.Summary{}
		}
		return writeJSON(g.stdout, list)
	}
	// The TOPOLOGY column (DC/rack, tokens, Cassandra version) when a
	// backup recorded it (Cassandra backups, unless --topology=false).
	topology := slices.ContainsFunc(list, func(s catalog.Summary) bool { return s.Topology != nil })
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	header := "NODE\tBACKUP\tSTATUS\tTIME\tKIND\tTAG\tFILES\tRAW\tSTORED"
	if topology {
		header += "\tTOPOLOGY"
	}
	fmt.Fprintln(tw, header)
	for _, s := range list {
		files, raw, stored := fmt.Sprint(s.Files), units.Human(s.RawBytes), units.Human(s.StoredBytes)
		if s.Status != catalog.Complete {
			files, raw, stored = "-", "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", s.Node, s.ID, s.Status, s.Time.Format("2006-01-02 15:04:05Z"), s.Kind, s.Tag,
			files, raw, stored)
		if topology {
			fmt.Fprintf(tw, "\t%s", s.Topology.Short())
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
