package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/runlog"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

// statusParallel is how many nodes status reads at once.
const statusParallel = 16

type statusOptions struct {
	tag         string
	expect      []string
	expectFile  string
	maxAge      string
	output      string
	parallelism int
}

// States of a node in `s3bak status`, the worst first.
const (
	stateMissing = "missing" // expected, and nothing of it is in the bucket
	stateUnknown = "unknown" // its objects could not be read
	stateFailed  = "failed"  // its last run failed
	stateStale   = "stale"   // no complete backup within --max-age
	stateNoTag   = "no_tag"  // no complete backup of --tag
	stateOK      = "ok"
)

// statusReport is what `s3bak status --output json` prints.
type statusReport struct {
	Cluster       string       `json:"cluster"`
	Time          time.Time    `json:"time"`
	Tag           string       `json:"tag,omitempty"`
	MaxAgeSeconds float64      `json:"max_age_seconds,omitempty"`
	OK            bool         `json:"ok"`        // no expected node needs attention
	Attention     []string     `json:"attention"` // the expected nodes that do, by name
	Nodes         []nodeStatus `json:"nodes"`
}

// nodeStatus is one node's line.
type nodeStatus struct {
	Node     string   `json:"node"`
	State    string   `json:"state"` // the worst of problems: missing, unknown, failed, stale, no_tag; else ok
	Expected bool     `json:"expected"`
	Problems []string `json:"problems,omitempty"`
	// The last complete backup, and how old it is.
	LastBackup *catalog.Summary `json:"last_backup,omitempty"`
	AgeSeconds float64          `json:"age_seconds,omitempty"`
	// AddedBytes is what the last complete backup uploaded (from its run
	// record, when it is the node's latest run).
	AddedBytes *int64 `json:"added_bytes,omitempty"`
	// HasTag says whether a complete backup of --tag exists.
	HasTag *bool `json:"has_tag,omitempty"`
	// LastRun is the node's latest run record (any command).
	LastRun    *runlog.Record `json:"last_run,omitempty"`
	Running    []string       `json:"running,omitempty"`    // ids of backups running now
	Incomplete []string       `json:"incomplete,omitempty"` // ids of interrupted backups
	Error      string         `json:"error,omitempty"`      // why the node could not be read
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "The cluster at a glance: each node's last backup, last run and its error, stale, failed and missing nodes",
		Long: `status reads the bucket alone: for every node of the cluster its last complete
backup (id, tag, age, files, size, what it uploaded), its last run (the run
record of the latest backup, restore, verify or purge: outcome, exit code,
error) and its running or interrupted backups.

A node needs attention when it is expected and missing from the bucket,
its last run failed, it has no complete backup within --max-age, or none of
--tag. Expected nodes are those of --expect-nodes / --expect-nodes-file,
else every node found. status then exits 7, so it can be a monitoring
check as it is.`,
		Example: `  s3bak status --bucket backups --cluster prod
  s3bak status --bucket backups --cluster prod --expect-nodes-file /etc/s3bak/nodes --max-age 26h
  s3bak status --bucket backups --cluster prod --tag daily-2026-11-25 --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStatus(cmd, g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.tag, "tag", "", "show which nodes have a complete backup of this tag (a node without one needs attention)")
	f.StringSliceVar(&o.expect, "expect-nodes", nil, "the nodes that should be there, comma-separated: one missing from the bucket needs attention")
	f.StringVar(&o.expectFile, "expect-nodes-file", "", "file of expected node names, one a line (# comments)")
	f.StringVar(&o.maxAge, "max-age", "", "a node whose last complete backup is older than this is stale (e.g. 26h, 2d)")
	f.StringVar(&o.output, "output", "table", "table or json")
	f.IntVar(&o.parallelism, "parallel", statusParallel, "nodes read at once")
	_ = f.MarkHidden("parallel")
	return cmd
}

// expected is the set of expected node names, nil for "every node found".
func (o *statusOptions) expected() ([]string, error) {
	names := slices.Clone(o.expect)
	if o.expectFile != "" {
		b, err := os.ReadFile(o.expectFile)
		if err != nil {
			return nil, fmt.Errorf("--expect-nodes-file: %w", err)
		}
		for line := range strings.Lines(string(b)) {
			line, _, _ = strings.Cut(line, "#")
			names = append(names, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })...)
		}
	}
	for i, n := range names {
		names[i] = strings.TrimSpace(n)
		if err := manifest.CheckName("expected node", names[i]); err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func runStatus(cmd *cobra.Command, g *globalOptions, o *statusOptions) error {
	ctx := cmd.Context()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	maxAge, err := durationFlag("--max-age", o.maxAge, 0)
	if err != nil {
		return &usageError{err}
	}
	expect, err := o.expected()
	if err != nil {
		return &usageError{err}
	}
	if o.tag != "" {
		if err := manifest.CheckName("--tag", o.tag); err != nil {
			return &usageError{err}
		}
	}
	node, client, err := g.open(ctx)
	if err != nil {
		return err
	}
	found, err := catalog.Nodes(ctx, client, node)
	if err != nil {
		return err
	}
	now := time.Now()
	rep := statusReport{Cluster: node.Cluster, Time: now.UTC(), Tag: o.tag, MaxAgeSeconds: maxAge.Seconds(), Attention: []string{}}
	names := slices.Concat(found, expect)
	slices.Sort(names)
	names = slices.Compact(names)
	rep.Nodes = make([]nodeStatus, len(names))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(max(1, o.parallelism))
	for i, name := range names {
		rep.Nodes[i] = nodeStatus{Node: name, Expected: expect == nil || slices.Contains(expect, name)}
		if !slices.Contains(found, name) {
			rep.Nodes[i].Problems = []string{"missing from the bucket"}
			rep.Nodes[i].State = stateMissing
			continue
		}
		eg.Go(func() error {
			readNodeStatus(ectx, client, catalog.NodeOf(node, name), &rep.Nodes[i], o.tag, maxAge, now)
			return ectx.Err()
		})
	}
	if err := eg.Wait(); err != nil {
		return err
	}
	for _, n := range rep.Nodes {
		if n.Expected && n.State != stateOK {
			rep.Attention = append(rep.Attention, n.Node)
		}
	}
	rep.OK = len(rep.Attention) == 0
	if o.output == "json" {
		err = writeJSON(g.stdout, rep)
	} else {
		err = printStatus(g, rep, now)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		var why []string
		for _, n := range rep.Nodes {
			if n.Expected && n.State != stateOK {
				why = append(why, n.Node+" "+n.State)
			}
		}
		return &exitCodeError{code: exitStatus, err: fmt.Errorf("%s of cluster %s need attention: %s",
			units.Plural(len(why), "node"), node.Cluster, strings.Join(why, ", "))}
	}
	return nil
}

// readNodeStatus fills in one node: its backups (from its
// summaries and markers, as list reads them) and its latest run record.
func readNodeStatus(ctx context.Context, c *transfer.Client, node manifest.Node, st *nodeStatus, tag string, maxAge time.Duration, now time.Time) {
	var mu sync.Mutex
	var problems []string
	addProblem := func(s string) {
		mu.Lock()
		problems = append(problems, s)
		mu.Unlock()
	}
	var list []catalog.Summary
	var last *runlog.Record
	var listErr, runErr error
	var wg sync.WaitGroup
	wg.Go(func() { list, listErr = catalog.List(ctx, c, []manifest.Node{node}) })
	wg.Go(func() { last, runErr = runlog.Latest(ctx, c, node) })
	wg.Wait()
	var errs []string
	for _, err := range []error{listErr, runErr} {
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err.Error())
		}
	}
	st.Error = strings.Join(errs, "; ")
	st.LastRun = last
	hasTag := false
	for i := range list {
		s := list[i]
		switch s.Status {
		case catalog.Running:
			st.Running = append(st.Running, s.ID)
		case catalog.Incomplete:
			st.Incomplete = append(st.Incomplete, s.ID)
		case catalog.Complete:
			st.LastBackup = &s // oldest first: the last one wins
			if tag != "" && s.Tag == tag {
				hasTag = true
			}
		}
	}
	if tag != "" {
		st.HasTag = &hasTag
	}
	if b := st.LastBackup; b != nil {
		st.AgeSeconds = now.Sub(b.Time).Seconds()
		if last != nil && last.Command == "backup" && last.BackupID == b.ID && !last.Failed() {
			added := last.BytesUploaded
			st.AddedBytes = &added
		}
	}
	state := stateOK
	worse := func(s string) {
		order := []string{stateMissing, stateUnknown, stateFailed, stateStale, stateNoTag, stateOK}
		if slices.Index(order, s) < slices.Index(order, state) {
			state = s
		}
	}
	if st.Error != "" {
		addProblem("could not be read: " + st.Error)
		worse(stateUnknown)
	}
	if last != nil && last.Failed() {
		msg := fmt.Sprintf("last run failed: %s exited %d", last.Command, last.ExitCode)
		if last.Error != "" {
			msg += ": " + last.Error
		}
		addProblem(msg)
		worse(stateFailed)
	}
	if maxAge > 0 && listErr == nil {
		switch b := st.LastBackup; {
		case b == nil:
			addProblem("no complete backup")
			worse(stateStale)
		case now.Sub(b.Time) > maxAge:
			addProblem(fmt.Sprintf("last complete backup is %s old (more than --max-age %s)", roundAge(now.Sub(b.Time)), maxAge))
			worse(stateStale)
		}
	}
	if tag != "" && !hasTag && listErr == nil {
		addProblem("no complete backup of tag " + tag)
		worse(stateNoTag)
	}
	st.Problems, st.State = problems, state
}

func roundAge(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute).String()
	case d >= time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Second).String()
}

func printStatus(g *globalOptions, rep statusReport, now time.Time) error {
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	head := "NODE\tSTATE\tLAST BACKUP\tTAG\tAGE\tFILES\tSTORED\tADDED\tLAST RUN\tUNFINISHED"
	if rep.Tag != "" {
		head += "\tHAS " + rep.Tag
	}
	// The last backup's recorded topology (DC/rack, tokens, version), when
	// a node's has one.
	topology := slices.ContainsFunc(rep.Nodes, func(n nodeStatus) bool { return n.LastBackup != nil && n.LastBackup.Topology != nil })
	if topology {
		head += "\tTOPOLOGY"
	}
	fmt.Fprintln(tw, head)
	for _, n := range rep.Nodes {
		state := n.State
		if !n.Expected {
			state += " (not expected)"
		}
		id, tag, age, files, stored, added := "-", "-", "-", "-", "-", "-"
		if b := n.LastBackup; b != nil {
			id, tag, age, files, stored = b.ID, b.Tag, roundAge(now.Sub(b.Time)), fmt.Sprint(b.Files), units.Human(b.StoredBytes)
		}
		if n.AddedBytes != nil {
			added = units.Human(*n.AddedBytes)
		}
		run := "-"
		if r := n.LastRun; r != nil {
			run = fmt.Sprintf("%s %s (exit %d) %s ago", r.Command, r.Outcome, r.ExitCode, roundAge(now.Sub(r.Finished)))
		}
		unfinished := "-"
		if len(n.Running)+len(n.Incomplete) > 0 {
			var parts []string
			if len(n.Running) > 0 {
				parts = append(parts, fmt.Sprintf("%d running", len(n.Running)))
			}
			if len(n.Incomplete) > 0 {
				parts = append(parts, fmt.Sprintf("%d incomplete", len(n.Incomplete)))
			}
			unfinished = strings.Join(parts, ", ")
		}
		line := strings.Join([]string{n.Node, state, id, tag, age, files, stored, added, run, unfinished}, "\t")
		if n.HasTag != nil {
			line += "\t" + map[bool]string{true: "yes", false: "no"}[*n.HasTag]
		} else if rep.Tag != "" {
			line += "\t-"
		}
		if topology {
			var t *catalog.Topology
			if n.LastBackup != nil {
				t = n.LastBackup.Topology
			}
			line += "\t" + t.Short()
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range rep.Nodes {
		for _, p := range n.Problems {
			fmt.Fprintf(g.stdout, "%s: %s\n", n.Node, p)
		}
	}
	return nil
}
