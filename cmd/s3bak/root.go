package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/runlog"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// globalOptions are the flags every command shares.
type globalOptions struct {
	configFile  string
	bucket      string
	prefix      string
	cluster     string
	node        string
	region      string
	profile     string
	endpointURL string
	pathStyle   bool
	checksum    string
	concurrency int
	ioTimeout   time.Duration
	maxAttempts int
	logFormat   string
	logLevel    string
	noProgress  bool
	// progressInterval is how often a run off a terminal logs its progress.
	progressInterval time.Duration
	metricsFile      string
	keepRuns         int
	limits
	run     runInfo // what the command did, for fatal errors and --metrics-file
	storage storageFlags

	stdout, stderr io.Writer
	logger         *slog.Logger
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd, _ := newRoot(stdout, stderr)
	return cmd
}

// newRoot also returns the options, which run reads after the command: the
// log format of a fatal error, the summary for --metrics-file.
func newRoot(stdout, stderr io.Writer) (*cobra.Command, *globalOptions) {
	g := &globalOptions{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{
		Use:   "s3bak",
		Short: "Back up Cassandra and HBase snapshots to S3, and restore them",
		Long: `s3bak backs up the snapshot files of one data node to S3 — streamed,
compressed, checksummed, in parallel — and restores them verified.
Every node runs it from cron; the bucket is the meeting point.

Configuration: flags, then S3BAK_* environment variables (S3BAK_BUCKET,
S3BAK_DATA_DIR=/a,/b, …), then the YAML file (--config, default
/etc/s3bak/config.yaml when present) whose keys are the flag names.
AWS settings come from the standard AWS configuration.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return g.setup(cmd) },
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	f := cmd.PersistentFlags()
	f.StringVar(&g.configFile, "config", "", "YAML configuration file (default /etc/s3bak/config.yaml when present)")
	f.StringVar(&g.bucket, "bucket", "", "S3 bucket")
	f.StringVar(&g.prefix, "prefix", "", "key prefix inside the bucket")
	f.StringVar(&g.cluster, "cluster", "default", "cluster name: all nodes of a cluster share it")
	f.StringVar(&g.node, "node", "", "node name (default: the host name)")
	f.StringVar(&g.region, "region", "", "AWS region (default: AWS configuration, else the bucket's)")
	f.StringVar(&g.profile, "profile", "", "AWS shared configuration profile")
	f.StringVar(&g.endpointURL, "endpoint-url", "", "custom S3 endpoint, e.g. MinIO (AWS_ENDPOINT_URL_S3 works too)")
	f.BoolVar(&g.pathStyle, "path-style", false, "path-style S3 addressing (on by itself with a custom endpoint)")
	f.StringVar(&g.checksum, "checksum-calculation", "", "request checksums: when_supported (default) or when_required, for stores that reject them")
	f.IntVar(&g.concurrency, "concurrency", 0, "files transferred at once (default: 4 × CPUs, at least 16: small files are latency-bound)")
	f.DurationVar(&g.ioTimeout, "io-timeout", transfer.DefaultIOTimeout,
		"give up and retry an S3 request that moves no byte for this long (a stalled server or a dead connection)")
	f.IntVar(&g.maxAttempts, "max-attempts", transfer.DefaultMaxAttempts,
		"tries of each S3 request before the run fails; the default rides out more than 100 s of S3 trouble")
	_ = f.MarkHidden("max-attempts")
	f.StringVar(&g.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal, json otherwise)")
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVar(&g.noProgress, "no-progress", false, "no progress bar even on a terminal")
	f.DurationVar(&g.progressInterval, "progress-interval", 30*time.Second, "off a terminal, log the progress of a run this often (0: never)")
	f.StringVar(&g.metricsFile, "metrics-file", "", "backup, restore, verify, purge: write the run's metrics here for node_exporter's textfile collector (e.g. /var/lib/node_exporter/textfile/s3bak.prom)")
	f.IntVar(&g.keepRuns, "keep-runs", runlog.DefaultKeep, "backup, restore, verify, purge: run records kept per node in the bucket (runs/), the oldest deleted after each run")
	g.limits.register(f)
	g.storage.register(f)
	cmd.AddCommand(newBackupCommand(g), newRestoreCommand(g), newListCommand(g), newVerifyCommand(g), newPurgeCommand(g), newIndexCommand(g), newPreflightCommand(g), newVersionCommand(g), newStatusCommand(g))
	return cmd, g
}

// setup applies the environment and the config file to flags that were
// not set, then builds the logger.
func (g *globalOptions) setup(cmd *cobra.Command) error {
	if err := applyConfig(cmd, g.configFile); err != nil {
		return &usageError{err}
	}
	logger, err := newLogger(g.stderr, g.logFormat, g.logLevel)
	if err != nil {
		return &usageError{err}
	}
	g.logger = logger
	g.limits.apply(logger)
	if g.node == "" {
		host, err := os.Hostname()
		if err != nil {
			return &usageError{fmt.Errorf("no --node and no host name: %w", err)}
		}
		g.node = strings.SplitN(host, ".", 2)[0]
	}
	if g.concurrency <= 0 {
		g.concurrency = max(16, 4*runtime.GOMAXPROCS(0))
	}
	return nil
}

func (g *globalOptions) nodeRef() (manifest.Node, error) {
	n := manifest.Node{Prefix: strings.Trim(g.prefix, "/"), Cluster: g.cluster, Name: g.node}
	if err := n.Validate(); err != nil {
		return n, &usageError{err}
	}
	return n, nil
}

func (g *globalOptions) client(ctx context.Context) (*transfer.Client, error) {
	if g.bucket == "" {
		return nil, &usageError{errors.New("no bucket: set --bucket, S3BAK_BUCKET or bucket: in the config file")}
	}
	o := transfer.Options{
		Bucket: g.bucket, Region: g.region, Profile: g.profile, EndpointURL: g.endpointURL,
		PathStyle: g.pathStyle, ChecksumCalculation: g.checksum, MaxConns: 4 * g.concurrency,
		IOTimeout: g.ioTimeout, MaxAttempts: g.maxAttempts,
		MaxRate: g.maxRate,
	}
	if err := g.storage.options(&o); err != nil {
		return nil, &usageError{err}
	}
	c, err := transfer.New(ctx, o)
	if err != nil {
		return nil, &usageError{err}
	}
	return c, nil
}

// open resolves this node's place in the bucket and a client for it.
func (g *globalOptions) open(ctx context.Context) (manifest.Node, *transfer.Client, error) {
	node, err := g.nodeRef()
	if err != nil {
		return node, nil, err
	}
	client, err := g.client(ctx)
	if err != nil {
		return node, nil, err
	}
	// First, so that missing credentials, an endpoint that cannot be
	// reached or refused credentials say so at once.
	if err := client.CheckBucket(ctx); err != nil {
		return node, client, err
	}
	g.opened(node, client)
	return node, client, nil
}

// openBeside is open for a command whose first requests need not wait for
// the bucket check: the check runs beside them (a round trip less before
// the work starts). Those requests take the context it returns, which ends
// when the check fails (a request to an endpoint that refuses connections
// would be retried for minutes), and checked waits for the check. The
// command returns checked's error before any of its own: it says plainly
// that the credentials, the endpoint or the bucket are wrong, where the
// command's own request would fail with less to say.
func (g *globalOptions) openBeside(ctx context.Context) (node manifest.Node, client *transfer.Client, wctx context.Context, checked func() error, err error) {
	node, err = g.nodeRef()
	if err != nil {
		return node, nil, nil, nil, err
	}
	client, err = g.client(ctx)
	if err != nil {
		return node, nil, nil, nil, err
	}
	wctx, checked = g.checkBeside(ctx, node, client)
	return node, client, wctx, checked, nil
}

// checkBeside starts client's bucket check and returns a context for the
// requests beside it, cancelled if the check fails; checked waits for the
// check and, once it passed, notes the bucket as opened (g.opened).
func (g *globalOptions) checkBeside(ctx context.Context, node manifest.Node, client *transfer.Client) (wctx context.Context, checked func() error) {
	wctx, cancel := context.WithCancelCause(ctx)
	ch := make(chan error, 1)
	go func() {
		err := client.CheckBucket(ctx)
		if err != nil {
			cancel(err)
		}
		ch <- err
	}()
	var (
		once sync.Once
		err  error
	)
	return wctx, func() error {
		once.Do(func() {
			if err = <-ch; err == nil {
				g.opened(node, client)
			}
		})
		return err
	}
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text, json or auto", format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}
