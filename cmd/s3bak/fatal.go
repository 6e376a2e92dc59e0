package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// runInfo is what a command did, for the fatal error record and the
// metrics file: set as the command learns it.
type runInfo struct {
	start time.Time
	tag   string
	id    string
	stats *runStats // nil until the command succeeded

	// Where the run record goes, once the bucket answered (opened).
	node   manifest.Node
	client *transfer.Client
}

// runStats are a successful run's numbers, for --metrics-file.
type runStats struct {
	files                                 int
	bytesRead, bytesUploaded, bytesStored int64
}

// jsonLog says whether the run logs JSON: --log-format json, or auto off a
// terminal. Flags that did not parse leave the format as given (or its
// default).
func (g *globalOptions) jsonLog(ran *cobra.Command) bool {
	format := g.logFormat
	if ran != nil {
		if f := ran.Flags().Lookup("log-format"); f != nil {
			format = f.Value.String()
		}
	}
	return format == "json" || (format == "auto" && !isTerminal(g.stderr))
}

// fatalJSON writes a failed run's error as one JSON record on stderr, the
// only line that says it: level ERROR, the error, its class, the exit code,
// and the command, cluster, node, tag and backup id it was about.
func fatalJSON(g *globalOptions, ran *cobra.Command, err error, code int) {
	logger := slog.New(slog.NewJSONHandler(g.stderr, nil))
	attrs := []any{"class", errorClass(err, code), "exit_code", code}
	if ran != nil && ran != ran.Root() {
		attrs = append(attrs, "command", ran.Name())
	}
	attrs = append(attrs, "cluster", g.flag(ran, "cluster"), "node", g.nodeName(ran))
	if g.run.tag != "" {
		attrs = append(attrs, "tag", g.run.tag)
	} else if t := g.flag(ran, "tag"); t != "" {
		attrs = append(attrs, "tag", t)
	}
	if g.run.id != "" {
		attrs = append(attrs, "backup_id", g.run.id)
	}
	if !g.run.start.IsZero() {
		attrs = append(attrs, "duration_seconds", time.Since(g.run.start).Seconds())
	}
	msg := "s3bak failed"
	if code == exitInterrupted {
		msg = "s3bak interrupted"
		attrs = append(attrs, "note", interruptedNote(ran))
	} else {
		attrs = append(attrs, "error", err.Error())
	}
	logger.Error(msg, attrs...)
}

// flag is a flag's value as the command saw it ("" when it has none).
func (g *globalOptions) flag(ran *cobra.Command, name string) string {
	if ran == nil {
		return ""
	}
	if f := ran.Flags().Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// nodeName is the node the run was about: --node, else the host name, as
// setup decides.
func (g *globalOptions) nodeName(ran *cobra.Command) string {
	if g.node != "" {
		return g.node
	}
	if n := g.flag(ran, "node"); n != "" {
		return n
	}
	host, _ := os.Hostname()
	return strings.SplitN(host, ".", 2)[0]
}

// errorClass names the kind of failure, for alerts and records: what the
// exit code says, and for a plain failure what is known of its cause.
func errorClass(err error, code int) string {
	switch code {
	case exitUsage:
		return "usage"
	case exitLocked:
		return "locked"
	case exitPreflight:
		return "preflight"
	case exitVerify:
		return "verify"
	case exitNotFound:
		return "not_found"
	case exitStatus:
		return "attention"
	case exitInterrupted:
		return "interrupted"
	}
	switch {
	case errors.Is(err, transfer.ErrCredentials):
		return "credentials"
	case errors.Is(err, transfer.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, chunk.ErrChanged):
		return "file_changed"
	case errors.Is(err, restore.ErrExists):
		return "exists"
	case errors.Is(err, restore.ErrSymlink):
		return "symlink"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, cassandra.ErrNodetool):
		return "nodetool"
	}
	var stall *transfer.StallError
	if errors.As(err, &stall) {
		return "stalled"
	}
	return "failed"
}
