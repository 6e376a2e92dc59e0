package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/purge"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

type purgeOptions struct {
	keepLast, keepDaily, keepWeekly, keepMonthly int
	keepWithin, grace, uploadAge                 string
	allNodes, dryRun, byTag                      bool
	output, tag                                  string
	lock                                         lockFlags
}

func newPurgeCommand(g *globalOptions) *cobra.Command {
	o := &purgeOptions{}
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Delete the backups a retention policy does not keep, and the data only they used",
		Long: `purge deletes the manifests of the backups that no --keep-* rule keeps (a
backup kept by any rule stays), then deletes the stored objects that no
remaining backup references and that are older than --grace, aborts
unfinished multipart uploads older than --upload-age, and removes the
markers of backups that never finished. It holds the node's lock, so it
never runs at the same time as a backup of that node; with --all-nodes a
node whose lock is held is skipped (exit code 3 at the end).`,
		Example: `  s3bak purge --bucket backups --cluster prod --keep-daily 7 --keep-weekly 4 --dry-run
  s3bak purge --bucket backups --cluster prod --all-nodes --keep-within 30d --keep-last 3
  s3bak purge --bucket backups --cluster prod --keep-daily 7 --dry-run --tag daily-2026-11-25`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPurge(cmd, g, o) },
	}
	f := cmd.Flags()
	f.IntVar(&o.keepLast, "keep-last", 0, "keep the newest N backups")
	f.StringVar(&o.keepWithin, "keep-within", "", "keep every backup within this span of the newest (e.g. 30d, 2w, 36h)")
	f.IntVar(&o.keepDaily, "keep-daily", 0, "keep the newest backup of each of the last N days that have one")
	f.IntVar(&o.keepWeekly, "keep-weekly", 0, "keep the newest backup of each of the last N ISO weeks that have one")
	f.IntVar(&o.keepMonthly, "keep-monthly", 0, "keep the newest backup of each of the last N months that have one")
	f.StringVar(&o.grace, "grace", "24h", "never delete an unreferenced object younger than this (a backup may be writing it)")
	f.StringVar(&o.uploadAge, "upload-age", "24h", "abort unfinished multipart uploads older than this")
	f.BoolVar(&o.allNodes, "all-nodes", false, "purge every node of the cluster")
	f.BoolVar(&o.byTag, "by-tag", false, "with --all-nodes: apply the rules to the cluster's snapshot tags, so every node keeps the same nights")
	f.BoolVar(&o.dryRun, "dry-run", false, "print what would be deleted; delete nothing")
	f.StringVar(&o.output, "output", "table", "table or json")
	f.StringVar(&o.tag, "tag", "", "with --dry-run: report only what would happen to the backups of this snapshot tag")
	commandLineOnlyFlag(cmd, "tag")
	o.lock.register(cmd)
	return cmd
}

func (o *purgeOptions) options() (purge.Options, error) {
	within, err := durationFlag("--keep-within", o.keepWithin, 0)
	if err != nil {
		return purge.Options{}, err
	}
	grace, err := durationFlag("--grace", o.grace, 24*time.Hour)
	if err != nil {
		return purge.Options{}, err
	}
	uploadAge, err := durationFlag("--upload-age", o.uploadAge, 24*time.Hour)
	if err != nil {
		return purge.Options{}, err
	}
	p := purge.Policy{Last: o.keepLast, Within: within, Daily: o.keepDaily, Weekly: o.keepWeekly, Monthly: o.keepMonthly}
	if err := p.Validate(); err != nil {
		return purge.Options{}, err
	}
	if err := checkOutput(o.output); err != nil {
		return purge.Options{}, err
	}
	if o.byTag && !o.allNodes {
		return purge.Options{}, errors.New("--by-tag applies the rules to the tags of the whole cluster: add --all-nodes")
	}
	if o.tag != "" && !o.dryRun {
		return purge.Options{}, errors.New("--tag only narrows the report of --dry-run: retention applies to all of a node's backups, so purge --tag without --dry-run would delete by the whole policy; add --dry-run")
	}
	return purge.Options{Policy: p, DryRun: o.dryRun, Grace: grace, UploadAge: uploadAge,
		BreakLock: o.lock.breakLock, Lease: o.lock.lease, Parallel: 4}, nil
}

func durationFlag(name, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := purge.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

func runPurge(cmd *cobra.Command, g *globalOptions, o *purgeOptions) error {
	ctx := cmd.Context()
	po, err := o.options()
	if err != nil {
		return &usageError{err}
	}
	po.Logger = g.logger
	node, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	if po.ObjectLock, err = purgeObjectLock(ctx, g, client); err != nil {
		return err
	}
	nodes := []manifest.Node{node}
	if o.allNodes {
		if nodes, err = clusterNodes(ctx, client, node); err != nil {
			return err
		}
	}
	// With --tag, the ids of that tag on each node: the reports show
	// only them.
	var tagged map[string][]string
	if o.tag != "" {
		if tagged, err = tagIDs(ctx, client, nodes, o.tag, o.allNodes); err != nil {
			return err
		}
	}
	var byTag func(node string) func([]purge.Backup) ([]purge.Backup, []purge.Backup)
	if o.byTag {
		if byTag, err = clusterTagRetention(ctx, client, nodes, po.Policy); err != nil {
			return err
		}
	}
	var reports []*purge.Report
	var skipped []error
	for _, n := range nodes {
		if byTag != nil {
			po.Select = byTag(n.Name)
		}
		rep, err := purge.Run(ctx, client, n, po)
		var held *lock.HeldError
		if errors.As(err, &held) && o.allNodes {
			g.logger.Warn("node skipped: it is locked", "node", n.Name, "holder", held.Holder.String())
			skipped = append(skipped, fmt.Errorf("node %s: %w", n.Name, err))
			continue
		}
		if err != nil {
			return fmt.Errorf("purge node %s: %w", n.Name, err)
		}
		if tagged != nil {
			keepTagged(rep, tagged[n.Name])
		}
		reports = append(reports, rep)
	}
	if err := printPurge(g, o.output, reports, o.tag); err != nil {
		return err
	}
	if len(skipped) > 0 {
		return fmt.Errorf("%s skipped, purge them later: %w", units.Plural(len(skipped), "node"), errors.Join(skipped...))
	}
	return nil
}

func printPurge(g *globalOptions, output string, reports []*purge.Report, tag string) error {
	if output == "json" {
		return writeJSON(g.stdout, reports)
	}
	for _, r := range reports {
		verb := "deleted"
		if r.DryRun {
			verb = "would delete"
		}
		for _, b := range r.Kept {
			fmt.Fprintf(g.stdout, "keep   %s %s (%s)\n", r.Node, b.ID, strings.Join(b.Reasons, ", "))
		}
		for _, b := range r.Removed {
			fmt.Fprintf(g.stdout, "remove %s %s\n", r.Node, b.ID)
		}
		fmt.Fprintf(g.stdout, "node %s: %s %s and %s (%s); kept %s and %s; %s spared; %s and %s cleaned\n",
			r.Node, verb, units.Plural(len(r.Removed), "backup"), units.Plural(r.ObjectsDeleted, "object"), units.Human(r.BytesDeleted),
			units.Plural(len(r.Kept), "backup"), units.Plural(r.ObjectsKept, "object"),
			units.Plural(r.YoungOrphans, "young unreferenced object"),
			units.Plural(r.UploadsAborted, "unfinished upload"), units.Plural(r.PendingRemoved, "pending marker"))
		printRetained(g, r)
		if e := r.EarlyDeletion; e.Objects > 0 {
			cost := "costs"
			if r.DryRun {
				cost = "would cost"
			}
			fmt.Fprintf(g.stdout, "node %s: deleting %s (%s) before their storage class's minimum duration %s about $%.2f "+
				"(early-deletion charge at us-east-1 list prices)\n",
				r.Node, units.Plural(e.Objects, "object"), units.Human(e.Bytes), cost, e.USD)
		}
	}
	if tag != "" {
		fmt.Fprintf(g.stdout, "only the backups of tag %s are listed and counted; objects, bytes, uploads and markers are the whole node's\n", tag)
	}
	return nil
}

// clusterTagRetention applies policy to the cluster's snapshot tags — each
// tag dated by its first backup on any node — and returns, per node, the
// selection that keeps that node's backups of the kept tags and removes
// the others. Every node then keeps the same nights, so a kept tag stays
// complete on every node that had it. A backup without a tag is dated and
// kept or removed on its own (its id stands for its tag); one the listing
// does not know is kept.
func clusterTagRetention(ctx context.Context, c *transfer.Client, nodes []manifest.Node, policy purge.Policy) (func(node string) func([]purge.Backup) ([]purge.Backup, []purge.Backup), error) {
	list, err := catalog.List(ctx, c, nodes)
	if err != nil {
		return nil, err
	}
	tagOf := map[string]map[string]string{} // node → id → tag
	first := map[string]time.Time{}         // tag → its first backup
	for _, s := range list {
		if s.Status != catalog.Complete {
			continue
		}
		tag := s.Tag
		if tag == "" {
			tag = "id:" + s.ID
		}
		if tagOf[s.Node] == nil {
			tagOf[s.Node] = map[string]string{}
		}
		tagOf[s.Node][s.ID] = tag
		if t, ok := first[tag]; !ok || s.Time.Before(t) {
			first[tag] = s.Time
		}
	}
	tags := make([]purge.Backup, 0, len(first))
	for tag, t := range first {
		tags = append(tags, purge.Backup{ID: tag, Time: t})
	}
	kept, _ := policy.Apply(tags)
	reasons := map[string][]string{}
	for _, k := range kept {
		reasons[k.ID] = append([]string{"tag " + k.ID}, k.Reasons...)
	}
	return func(node string) func([]purge.Backup) ([]purge.Backup, []purge.Backup) {
		return func(backups []purge.Backup) (keep, remove []purge.Backup) {
			for _, b := range backups {
				tag, known := tagOf[node][b.ID]
				why, kept := reasons[tag]
				switch {
				case !known:
					b.Reasons = []string{"not in the cluster's listing"}
					keep = append(keep, b)
				case kept:
					b.Reasons = why
					keep = append(keep, b)
				default:
					remove = append(remove, b)
				}
			}
			return keep, remove
		}
	}, nil
}

// keepTagged narrows a report's kept and removed backups to ids.
func keepTagged(rep *purge.Report, ids []string) {
	in := func(b purge.Backup) bool { return !slices.Contains(ids, b.ID) }
	rep.Kept = slices.DeleteFunc(rep.Kept, in)
	rep.Removed = slices.DeleteFunc(rep.Removed, in)
}

// clusterNodes lists every node of node's cluster.
func clusterNodes(ctx context.Context, c *transfer.Client, node manifest.Node) ([]manifest.Node, error) {
	names, err := catalog.Nodes(ctx, c, node)
	if err != nil {
		return nil, err
	}
	nodes := make([]manifest.Node, len(names))
	for i, n := range names {
		nodes[i] = catalog.NodeOf(node, n)
	}
	return nodes, nil
}

// purgeObjectLock asks whether the bucket has S3 Object Lock: a purge then
// deletes versions, never adding a delete marker (which would hide a
// protected object from restore), and skips what is still retained. A
// purge that cannot tell does not delete.
func purgeObjectLock(ctx context.Context, g *globalOptions, c *transfer.Client) (bool, error) {
	l, err := c.ObjectLockConfig(ctx)
	if err != nil {
		return false, fmt.Errorf("purge reads the bucket's Object Lock configuration first (on an Object Lock bucket a plain delete would hide protected backups behind delete markers): %w", err)
	}
	if l.Enabled {
		g.logger.Info("the bucket has S3 Object Lock: what is retained is kept, the rest deleted version by version", "object_lock", l.String())
	}
	return l.Enabled, nil
}

// printRetained says what Object Lock kept from the purge.
func printRetained(g *globalOptions, r *purge.Report) {
	ret := r.Retained
	if ret.Backups == 0 && ret.Objects == 0 {
		return
	}
	fmt.Fprintf(g.stdout, "node %s: S3 Object Lock retention kept %s and %s (%s) the policy would remove; a purge after their retention ends removes them\n",
		r.Node, units.Plural(ret.Backups, "backup"), units.Plural(ret.Objects, "unreferenced object"), units.Human(ret.Bytes))
	for _, k := range ret.First {
		fmt.Fprintf(g.stdout, "retained s3://%s/%s: %s until %s\n", g.bucket, k.Key, strings.ToLower(k.Mode), k.Until.UTC().Format(time.RFC3339))
	}
	g.logger.Warn("objects under Object Lock retention were not purged", "node", r.Node, "backups", ret.Backups, "objects", ret.Objects)
}
