package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// selectFlags choose the backup a command reads: --backup ID, or --tag T
// (the node's newest complete backup of that snapshot tag), and with
// --from-node N a backup of another node of the cluster (a replacement
// host restoring its predecessor's data).
type selectFlags struct {
	backupID string
	tag      string
	fromNode string
	cmd      *cobra.Command
}

// register adds --backup and --tag, and --from-node when fromNode.
func (s *selectFlags) register(cmd *cobra.Command, fromNode bool) {
	s.cmd = cmd
	f := cmd.Flags()
	f.StringVar(&s.backupID, "backup", "latest", "backup id (see s3bak list)")
	f.StringVar(&s.tag, "tag", "", "the node's newest complete backup of this snapshot tag (instead of --backup)")
	commandLineOnlyFlag(cmd, "tag")
	if fromNode {
		f.StringVar(&s.fromNode, "from-node", "", "read this node's backups instead of --node's (a replacement host restoring the node it replaces)")
	}
}

// check refuses contradictory flags (exit 2).
func (s *selectFlags) check() error {
	if s.tag != "" && s.cmd.Flags().Changed("backup") {
		return &usageError{errors.New("--backup and --tag both name a backup: give one of them")}
	}
	if s.fromNode != "" {
		if err := manifest.CheckName("--from-node", s.fromNode); err != nil {
			return &usageError{err}
		}
	}
	return nil
}

// node is the node whose backups are read: --from-node, else local.
func (s *selectFlags) node(local manifest.Node) manifest.Node {
	if s.fromNode == "" {
		return local
	}
	return catalog.NodeOf(local, s.fromNode)
}

// fetch copies the selected backup's manifest of node to read it file by
// file (catalog.Local).
func (s *selectFlags) fetch(ctx context.Context, c *transfer.Client, node manifest.Node) (*catalog.Local, error) {
	id, err := catalog.Select(ctx, c, node, s.backupID, s.tag)
	if err != nil {
		return nil, err
	}
	return catalog.Fetch(ctx, c, node, id, "")
}

// filterTag keeps the summaries of tag (all of them when tag is ""). A
// tag that no backup has is not found (exit 6), naming the tags there are.
func filterTag(list []catalog.Summary, tag, where string) ([]catalog.Summary, error) {
	if tag == "" {
		return list, nil
	}
	var out []catalog.Summary
	for _, s := range list {
		if s.Tag == tag {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, catalog.UnknownTag(where, tag, list)
	}
	return out, nil
}

// notFound makes err exit 6 (not found).
func notFound(err error) error {
	return &exitCodeError{exitNotFound, err}
}

// describeFrom says whose backup a command reads when it is not --node's.
func (s *selectFlags) describeFrom(local manifest.Node) string {
	if s.fromNode == "" || s.fromNode == local.Name {
		return ""
	}
	return fmt.Sprintf(" (from node %s, on node %s)", s.fromNode, local.Name)
}

// commandLineOnlyFlag makes flag name of cmd one that S3BAK_<FLAG> and the
// configuration file do not set: --tag selects a backup on the command
// line, while the file's tag: and S3BAK_TAG are backup's snapshot tag.
func commandLineOnlyFlag(cmd *cobra.Command, name string) {
	if err := cmd.Flags().SetAnnotation(name, commandLineOnly, []string{"true"}); err != nil {
		panic(err)
	}
}

// tagIDs are the ids of the complete backups of tag, per node name. No
// node with one is not found (exit 6), naming the tags there are.
func tagIDs(ctx context.Context, c *transfer.Client, nodes []manifest.Node, tag string, allNodes bool) (map[string][]string, error) {
	list, err := catalog.List(ctx, c, nodes)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	found := false
	for _, n := range nodes {
		var mine []catalog.Summary
		for _, s := range list {
			if s.Node == n.Name {
				mine = append(mine, s)
			}
		}
		out[n.Name] = catalog.TagIDs(mine, tag)
		found = found || len(out[n.Name]) > 0
	}
	if !found {
		where := "node " + nodes[0].Name
		if allNodes {
			where = "cluster " + nodes[0].Cluster
		}
		return nil, catalog.UnknownTag(where, tag, list)
	}
	return out, nil
}
