package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/runlog"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// runRecordCommands are the commands that leave a run record in the bucket.
var runRecordCommands = map[string]bool{"backup": true, "restore": true, "verify": true, "purge": true}

// runRecordTimeout bounds writing the record after the run: a store that
// failed the run may not take the record either.
const runRecordTimeout = 30 * time.Second

// opened notes the node and the client once the bucket answered: from then
// on the run leaves a record, whatever happens.
func (g *globalOptions) opened(node manifest.Node, c *transfer.Client) {
	g.run.node, g.run.client = node, c
}

// writeRunRecord stores the run's record under the node's prefix and trims
// the node's old records. A run that failed before it reached the bucket
// gets a client now, if the failure was not the bucket itself (credentials,
// endpoint) or the command line: a backup of a tag that does not exist is
// recorded like any other failure. Not being able to write the record is a
// warning; the run's exit code stands.
func (g *globalOptions) writeRunRecord(ctx context.Context, ran *cobra.Command, runErr error, code int) {
	if ran == nil || !runRecordCommands[ran.Name()] {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runRecordTimeout)
	defer cancel()
	class := ""
	if runErr != nil {
		class = errorClass(runErr, code)
	}
	node, client := g.run.node, g.run.client
	if client == nil {
		if g.logger == nil || class == "usage" || class == "credentials" || class == "unreachable" {
			return // setup or the bucket failed: nowhere to write
		}
		var err error
		if node, err = g.nodeRef(); err != nil {
			return
		}
		if client, err = g.client(ctx); err != nil {
			return
		}
		if err := client.CheckBucket(ctx); err != nil {
			g.warn(ran, "run record not written", err)
			return
		}
	}
	end := time.Now()
	host, _ := os.Hostname()
	r := &runlog.Record{
		Command: ran.Name(), Cluster: node.Cluster, Node: node.Name, Host: host,
		Started: g.run.start.UTC(), Finished: end.UTC(), DurationSeconds: end.Sub(g.run.start).Seconds(),
		Outcome: runlog.Success, ExitCode: code, Tag: g.run.tag, BackupID: g.run.id, Tool: toolVersion(),
	}
	if r.Tag == "" {
		r.Tag = g.flag(ran, "tag")
	}
	if s := g.run.stats; s != nil && code == exitOK {
		r.Files, r.BytesRead, r.BytesUploaded, r.BytesStored = s.files, s.bytesRead, s.bytesUploaded, s.bytesStored
	}
	if runErr != nil {
		r.Outcome, r.ErrorClass, r.Error = runlog.Failed, class, runErr.Error()
		if code == exitInterrupted {
			r.Outcome, r.Error = runlog.Interrupted, interruptedNote(ran)
		}
		r.Error = runlog.Scrub(r.Error, secrets(ctx, client)...)
	}
	if _, err := runlog.Write(ctx, client, node, r, g.keepRuns); err != nil {
		g.warn(ran, "run record not written", err)
	}
	if ran.Name() == "purge" && code == exitOK && g.flag(ran, "all-nodes") == "true" && g.flag(ran, "dry-run") != "true" {
		g.trimClusterRuns(ctx, ran, client, node)
	}
}

// trimClusterRuns trims the run records of every node of the cluster, after
// a purge of them all (each node's own runs trim its records too; a node
// that stopped running keeps its last ones until then).
func (g *globalOptions) trimClusterRuns(ctx context.Context, ran *cobra.Command, c *transfer.Client, node manifest.Node) {
	names, err := catalog.Nodes(ctx, c, node)
	if err != nil {
		g.warn(ran, "run records not trimmed", err)
		return
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(statusParallel)
	for _, name := range names {
		if name != node.Name {
			eg.Go(func() error { return runlog.Trim(ectx, c, catalog.NodeOf(node, name), g.keepRuns) })
		}
	}
	if err := eg.Wait(); err != nil {
		g.warn(ran, "run records not trimmed", err)
	}
}

// secrets are the credentials the run used, which a record must never
// hold: the error messages are written without them, and this is the
// second line.
func secrets(ctx context.Context, c *transfer.Client) []string {
	out := []string{os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")}
	if _, cfg := c.SDK(); cfg.Credentials != nil {
		if creds, err := cfg.Credentials.Retrieve(ctx); err == nil {
			out = append(out, creds.SecretAccessKey, creds.SessionToken)
		}
	}
	return out
}

// warn says that something beside the run failed, in the run's log format.
func (g *globalOptions) warn(ran *cobra.Command, msg string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if g.jsonLog(ran) {
		slog.New(slog.NewJSONHandler(g.stderr, nil)).Warn(msg, "error", err.Error())
	} else {
		fmt.Fprintf(g.stderr, "s3bak: warning: %s: %v\n", msg, err)
	}
}
