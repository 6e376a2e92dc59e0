// Command s3bak backs up Cassandra and HBase snapshots from a data node to
// S3 and restores them. main only maps errors to the documented exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
)

// Exit codes, as documented in README.md.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitLocked      = 3
	exitPreflight   = 4
	exitVerify      = 5
	exitNotFound    = 6
	exitStatus      = 7
	exitInterrupted = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("S3BAK_CPU_PROFILE"), os.Stderr)
	stopHeap := startHeapProfile(os.Getenv("S3BAK_MEM_PROFILE"), os.Stderr)
	stopTrace := startTrace(os.Getenv("S3BAK_TRACE"), os.Stderr)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stopTrace()
	stopHeap()
	stopProfile()
	stop()
	os.Exit(code)
}

// run executes one command line and returns its exit code; tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, g := newRoot(stdout, stderr)
	cmd.SetArgs(args)
	g.run.start = time.Now()
	ran, err := cmd.ExecuteContextC(ctx)
	code := exitOK
	if err != nil {
		code = exitCode(ctx, err)
		if g.jsonLog(ran) {
			fatalJSON(g, ran, err, code)
		} else if code == exitInterrupted {
			// What the run was doing ends in "context canceled": not news.
			fmt.Fprintf(stderr, "s3bak: interrupted; %s\n", interruptedNote(ran))
		} else {
			fmt.Fprintf(stderr, "s3bak: %v\n", err)
		}
	}
	if g.metricsFile != "" && ran != nil && metricsCommands[ran.Name()] {
		err := writeMetrics(g.metricsFile, ran.Name(), g.flag(ran, "cluster"), g.nodeName(ran), code, g.run.start, time.Now(), g.run.stats)
		if err != nil {
			// The run's own outcome stands; the missing metrics are
			// what an alert on staleness will see.
			g.warn(ran, "metrics not written", err)
		}
	}
	g.writeRunRecord(ctx, ran, err, code)
	return code
}

// interruptedNote says what an interrupted command left behind.
func interruptedNote(c *cobra.Command) string {
	if c == nil {
		return "run it again"
	}
	switch c.Name() {
	case "backup":
		return "run the backup again and it resumes where this one stopped (until then, list shows it as incomplete)"
	case "restore":
		return "no file was moved into place; run the restore again"
	}
	return "run it again"
}

// exitCodeError carries a code decided by a command (preflight verdicts).
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// usageError marks bad flags, arguments or configuration.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func exitCode(ctx context.Context, err error) int {
	var ce *exitCodeError
	var ue *usageError
	var tag *cassandra.TagNotFoundError
	var held *lock.HeldError
	switch {
	case errors.As(err, &held), errors.Is(err, lock.ErrLost):
		return exitLocked
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, restore.ErrVerify), errors.Is(err, manifest.ErrCorrupt):
		return exitVerify
	case errors.As(err, &tag), errors.Is(err, catalog.ErrNoBackup):
		return exitNotFound
	}
	return exitFailed
}
