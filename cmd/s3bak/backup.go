package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/backup"
	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/hbase"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/transfer"
	"github.com/s3bak/s3bak/pkg/units"
)

// A large file's parts are sized by the bucket's distance, unless
// --part-size and --part-concurrency say otherwise. A part holds whole
// chunks, as many as fit in the part size, so an 8 MiB chunk that does not
// compress is a part of its own. A bucket tens of milliseconds away (S3)
// makes every part wait a round trip, and a connection carries some 80
// MB/s, so more parts in flight carry more: eight of 8 MiB, which fit the
// default memory (backup.StreamShape). Through the bench's 20ms proxy the
// default set backed up in 4.9 s with four parts of a chunk in flight,
// 4.1 s with seven and eight. One a millisecond away (a MinIO beside the node) gets
// fewer, larger parts, which cost the server less CPU. Measured in
// bench/README.md, "Parts and round trips".
const (
	nearPartSize, nearParts = 16 << 20, 3
	farPartSize, farParts   = 8 << 20, 8
)

// partsFor is the part size and the parts in flight for a bucket rtt
// away (transfer.Near; --skip-preflight measures none: far, as S3 is).
func partsFor(rtt time.Duration) (size int64, parts int) {
	if transfer.Near(rtt) {
		return nearPartSize, nearParts
	}
	return farPartSize, farParts
}

type backupOptions struct {
	dataDirs      []string
	tag           string
	keyspaces     []string
	tables        []string
	includeSystem bool
	compression   string
	zstdLevel     int
	chunkSize     int64
	partSize      int64
	partsAtOnce   int
	packSize      int64
	hbaseRoot     string
	hbaseSnaps    []string
	allowNAT      bool
	skipPreflight bool
	preflight     preflightFlags
	full          bool
	lock          lockFlags
	checkpoint    time.Duration
	output        string

	// The snapshot's lifecycle (--snapshot) and the tag's name (--tag auto).
	snapshot        bool
	nodetool        string
	nodetoolTimeout time.Duration
	clearOnFailure  bool
	tagPeriod       time.Duration
	again           bool

	// The node's topology and schema, recorded in the manifest (--topology).
	topology bool
	cqlsh    string

	// retention is --retain-days' (nil without).
	retention *backupRetention
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	o := &backupOptions{}
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up this node's snapshot to S3",
		Example: `  # s3bak takes the snapshot, backs it up and clears it (cron, every node alike):
  s3bak backup --bucket backups --cluster prod --data-dir /var/lib/cassandra/data --snapshot --tag auto

  # a snapshot taken by hand:
  nodetool snapshot -t daily-2026-11-25
  s3bak backup --bucket backups --cluster prod --data-dir /var/lib/cassandra/data --tag daily-2026-11-25
  nodetool clearsnapshot -t daily-2026-11-25`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBackup(cmd, g, o) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.dataDirs, "data-dir", nil, "Cassandra data directory (repeat for every data_file_directories entry)")
	f.StringVar(&o.output, "output", "table", "table, or json: one summary object")
	f.StringVar(&o.tag, "tag", "", "snapshot tag (nodetool snapshot -t TAG), or auto: auto-<UTC date> floored to --tag-period, the same on every node")
	f.DurationVar(&o.tagPeriod, "tag-period", 24*time.Hour, "with --tag auto: one tag per period (24h: auto-2026-11-30; 6h: auto-2026-11-30T06; 168h: weeks from Monday)")
	f.BoolVar(&o.snapshot, "snapshot", false, "take the snapshot with nodetool snapshot -t TAG, back it up, then nodetool clearsnapshot -t TAG (kept when the backup fails, for the retry)")
	f.StringVar(&o.nodetool, "nodetool", "nodetool", `with --snapshot, and for the topology: the nodetool command and its fixed arguments, split like a shell's words (no shell runs), e.g. "nodetool -h 127.0.0.1 -u backup --password-file /etc/cassandra/jmxremote.password"`)
	f.DurationVar(&o.nodetoolTimeout, "nodetool-timeout", cassandra.DefaultNodetoolTimeout, "with --snapshot: give up on a nodetool call after this long (--topology's calls: at most 2m)")
	f.BoolVar(&o.topology, "topology", true, "Cassandra: record the node's tokens, host ID, DC, rack, cluster name, address and version (nodetool info -T, status, describecluster, version) and its CQL schema (cqlsh -e 'DESCRIBE SCHEMA') in the manifest; what they cannot tell is recorded as unknown, with a warning (--topology=false: none of it)")
	f.StringVar(&o.cqlsh, "cqlsh", "cqlsh", `for the schema (--topology): the cqlsh command and its fixed arguments, split like --nodetool, e.g. "cqlsh 10.0.0.1 -u backup --credentials /etc/s3bak/cqlshrc"`)
	f.BoolVar(&o.clearOnFailure, "clear-on-failure", false, "with --snapshot: clear the snapshot also when the backup fails (by default it is kept, and the next run backs it up)")
	f.BoolVar(&o.again, "again", false, "back up even when the node already has a complete backup of the tag (by default that run says so and exits 0)")
	f.StringArrayVar(&o.keyspaces, "keyspace", nil, "only this keyspace (repeatable)")
	f.StringArrayVar(&o.tables, "table", nil, "only this table, as TABLE or KEYSPACE.TABLE (repeatable)")
	f.BoolVar(&o.includeSystem, "include-system", false, "also back up system_auth, system_distributed, system_traces, system and system_schema")
	f.StringVar(&o.hbaseRoot, "hbase-root", "", "HBase: hbase.rootdir on a local or mounted file system (instead of --data-dir)")
	f.StringArrayVar(&o.hbaseSnaps, "hbase-snapshot", nil, "HBase: snapshot name (repeatable), or all")
	f.BoolVar(&o.allowNAT, "allow-nat", false, "back up even when preflight finds that S3 traffic would not take a VPC endpoint")
	f.BoolVar(&o.skipPreflight, "skip-preflight", false, "do not run the preflight checks")
	o.preflight.register(cmd)
	f.BoolVar(&o.full, "full", false, "read and upload every file, even those the last backup says are stored")
	o.lock.register(cmd)
	f.DurationVar(&o.checkpoint, "checkpoint-interval", 5*time.Second, "how often a backup checkpoints what it stored, so a rerun after a crash resumes")
	_ = f.MarkHidden("checkpoint-interval")
	f.StringVar(&o.compression, "compression", "auto", "auto (compress what compresses), zstd, or none")
	f.IntVar(&o.zstdLevel, "zstd-level", 3, "zstd level, 1 (fastest) to 22")
	o.chunkSize, o.packSize = chunk.DefaultChunkSize, backup.DefaultPackSize
	f.Var(&units.Size{P: &o.chunkSize, Min: chunk.MinChunkSize, Max: chunk.MaxChunkSize}, "chunk-size",
		"raw bytes per independently compressed chunk, 4KiB to 1GiB")
	f.Var(&units.Size{P: &o.partSize, Zero: "by the bucket's round trip"}, "part-size",
		"multipart upload part size (raised to at least 5MiB, and when a file would need more than 10,000 parts); by default 8MiB for a bucket 5ms or more away, as S3 is, and 16MiB for a nearer one")
	f.IntVar(&o.partsAtOnce, "part-concurrency", 0,
		"parts of one large file uploaded at once (each a connection; lowered to fit --max-memory); 0: 8 for a bucket 5ms or more away, 3 for a nearer one")
	f.Var(&units.Size{P: &o.packSize, Zero: "an object per file"}, "pack-size",
		"small files are stored together in packs of this size, one request for many files (0: an object per file)")
	return cmd
}

func runBackup(cmd *cobra.Command, g *globalOptions, o *backupOptions) error {
	ctx := cmd.Context()
	if err := checkOutput(o.output); err != nil {
		return err
	}
	node, err := g.nodeRef()
	if err != nil {
		return err
	}
	mode, err := chunk.ParseMode(o.compression)
	if err != nil {
		return &usageError{err}
	}
	packSize := o.packSize
	if packSize == 0 {
		packSize = backup.NoPacking
	}
	nodetool, err := o.resolve(time.Now())
	if err != nil {
		return err
	}
	g.run.tag = o.tag
	// The snapshot is listed while the client is made and the bucket
	// checked: neither waits for the other (a node's thousands of
	// fstatat calls; the first round trips to S3). What the listing finds
	// wrong (no such tag, an unreadable directory) is still the error
	// reported, as when it came first.
	discovered := func() (*source.Set, error) { return nil, nil }
	if !o.snapshot {
		discovered = o.discoverBeside(ctx, g.logger)
	}
	client, err := g.client(ctx)
	if err != nil {
		set, derr := discovered()
		if set != nil {
			g.run.tag = set.Tag
		}
		return cmp.Or(derr, err)
	}
	// Before any request: the preflight below writes through this client
	// while the retention check runs.
	client.RetainAlso(manifestKeyOf(node))
	// The bucket check, the preflight, the retention check and whether the
	// tag is backed up already do not wait for each other: the first two
	// run beside the others (the preflight is half a dozen requests one
	// after the other), and are judged after them, in that order.
	// Credentials, endpoint and bucket first: the preflight judges the
	// route, and has nothing to say about a server that cannot be reached.
	// With --snapshot it all still comes before the snapshot: a route that
	// stops the backup leaves no snapshot behind (the preflight's estimate:
	// the live sstables).
	bctx, checked := g.checkBeside(ctx, node, client)
	preflightDone := func(bool) error { return nil }
	if !o.skipPreflight {
		estimate := func() int64 {
			if set, err := discovered(); set != nil && err == nil {
				return set.TotalSize()
			}
			return o.liveSize()
		}
		preflightDone = o.preflight.background(bctx, g, client, estimate, o.allowNAT)
		o.skipPreflight = true
	}
	o.retention, err = g.retention(bctx, client, node)
	done := false
	if err == nil {
		done, err = o.alreadyBackedUp(bctx, g, client, node, nodetool)
	}
	set, derr := discovered()
	cerr := checked()
	if derr != nil || cerr != nil {
		_ = preflightDone(false)
		return cmp.Or(derr, cerr)
	}
	if set != nil {
		g.run.tag = set.Tag // HBase's: its snapshots' names
	}
	if done || err != nil {
		_ = preflightDone(false)
		return err
	}
	if err := preflightDone(true); err != nil {
		return err
	}
	if o.snapshot {
		if set, err = o.takeSnapshot(ctx, g.logger, nodetool); err != nil {
			return o.keepOrClear(ctx, g.logger, nodetool, err)
		}
		err = o.backupSet(ctx, cmd, g, node, client, mode, packSize, set)
		if err != nil {
			return o.keepOrClear(ctx, g.logger, nodetool, err)
		}
		g.logger.Info("clearing the snapshot", "tag", o.tag)
		if err := nodetool.ClearSnapshot(ctx, o.tag); err != nil {
			return fmt.Errorf("backup %s is complete, but its snapshot was not cleared (the next run clears it, or nodetool clearsnapshot -t %s): %w", g.run.id, o.tag, err)
		}
		o.warnOlderSnapshots(g.logger)
		return nil
	}
	return o.backupSet(ctx, cmd, g, node, client, mode, packSize, set)
}

// parts is --part-size and --part-concurrency, each by the bucket's round
// trip when not given (see partsFor).
func (o *backupOptions) parts(rtt time.Duration, logger *slog.Logger) (size int64, n int) {
	size, n = partsFor(rtt)
	logger.Debug("parts for the bucket's round trip", "round_trip", rtt, "part_size", units.Format(size), "parts", n)
	if o.partSize > 0 {
		size = o.partSize
	}
	if o.partsAtOnce > 0 {
		n = o.partsAtOnce
	}
	return size, n
}

// backupSet backs up the snapshot's files and prints the summary.
func (o *backupOptions) backupSet(ctx context.Context, cmd *cobra.Command, g *globalOptions, node manifest.Node, client *transfer.Client,
	mode chunk.Mode, packSize int64, set *source.Set) error {
	if !o.skipPreflight {
		if err := o.preflight.gate(ctx, g, client, set.TotalSize(), o.allowNAT); err != nil {
			return err
		}
	}
	topo, err := o.readTopology(ctx, g.logger, set)
	if err != nil {
		return err
	}
	defer topo.stop()
	buffers := g.limits.backupBuffers(set.Memory(), g.logger)
	partSize, parts := o.parts(client.RoundTrip(), g.logger)
	// A small --max-memory gets smaller parts and chunks rather than a
	// stream that cannot fit (an explicit --chunk-size is kept).
	stream := backup.StreamShape(buffers.Size(),
		backup.Stream{ChunkSize: o.chunkSize, PartSize: partSize, Concurrency: parts},
		set.LargestFile(), cmd.Flags().Changed("chunk-size"))
	if stream.ChunkSize != o.chunkSize {
		g.logger.Info("smaller chunks to fit --max-memory", "chunk_size", units.Format(stream.ChunkSize), "part_size", units.Format(stream.PartSize))
	}
	enc, err := chunk.NewEncoder(chunk.Options{Mode: mode, ChunkSize: int(stream.ChunkSize), Level: o.zstdLevel, Workers: g.limits.encoders()})
	if err != nil {
		return &usageError{err}
	}
	defer enc.Close()
	up := client.NewUploader(transfer.UploaderOptions{PartSize: stream.PartSize, Concurrency: stream.Concurrency})
	bar := g.progress(set.TotalSize(), set.Count(), "backup")
	start := time.Now()
	logger := g.runLogger(start, "cluster", node.Cluster, "node", node.Name, "tag", set.Tag)
	res, err := backup.New(client, enc, up, backup.Options{
		Node: node, Tool: toolVersion(), Concurrency: g.concurrency, Logger: logger, Progress: bar, Full: o.full,
		Budget: buffers, PackSize: packSize, BeforeManifest: beforeManifest(topo, o.retention),
	}).RunLocked(ctx, set, backup.SessionOptions{Lease: o.lock.lease, BreakLock: o.lock.breakLock, Checkpoint: o.checkpoint})
	bar.Finish()
	if err == nil {
		err = o.retention.afterManifest(ctx, res.Manifest)
	}
	if err != nil {
		return err
	}
	m := res.Manifest
	g.run.id = m.ID
	g.run.stats = &runStats{files: int(m.Count()), bytesRead: m.RawBytes() - res.UnreadBytes, bytesUploaded: res.UploadedBytes, bytesStored: m.StoredBytes()}
	if o.output == "json" {
		return writeJSON(g.stdout, backupOutput{
			Cluster: m.Cluster, Node: m.Node, Kind: m.Kind, Tag: m.Tag, BackupID: m.ID, Started: m.Started,
			DurationSeconds: time.Since(start).Seconds(), Files: int(m.Count()), RawBytes: m.RawBytes(), ReadBytes: m.RawBytes() - res.UnreadBytes, StoredBytes: m.StoredBytes(),
			Uploaded: res.Uploaded, UploadedBytes: res.UploadedBytes, Packs: res.Packs, Reused: res.Reused,
			Duplicates: res.Duplicates, Unread: res.Unread, Manifest: res.ManifestKey, Tool: m.Tool,
		})
	}
	reused := ""
	if n := res.Reused - res.Duplicates; n > 0 {
		reused += fmt.Sprintf(", %s already stored (%d not read again)", units.Plural(n, "file"), res.Unread)
	}
	if res.Duplicates > 0 {
		reused += fmt.Sprintf(", %s within this backup", units.Plural(res.Duplicates, "duplicate"))
	}
	_, err = fmt.Fprintf(g.stdout, "backup %s of %s/%s: %s, %s raw, %s stored; uploaded %s (%s; the small ones in %s)%s; %s\n",
		m.ID, m.Cluster, m.Node, units.Plural(int(m.Count()), "file"), units.Human(m.RawBytes()), units.Human(m.StoredBytes()),
		units.Plural(res.Uploaded, "content"), units.Human(res.UploadedBytes), units.Plural(res.Packs, "pack"),
		reused, time.Since(start).Round(time.Millisecond))
	return err
}

// beforeManifest is what a backup does once its contents are stored and
// before its manifest is written: the topology read beside it joins the
// manifest's metadata, then --retain-days extends the retention of what
// the backup reuses.
func beforeManifest(topo *topology, retention *backupRetention) func(context.Context, *manifest.Manifest, []string) error {
	if topo == nil {
		return retention.hook()
	}
	return func(ctx context.Context, m *manifest.Manifest, keys []string) error {
		if err := topo.addTo(ctx, m); err != nil {
			return err
		}
		if hook := retention.hook(); hook != nil {
			return hook(ctx, m, keys)
		}
		return nil
	}
}

// discoverBeside lists the snapshot (discover) in the background; the
// function it returns waits for the listing.
func (o *backupOptions) discoverBeside(ctx context.Context, logger *slog.Logger) func() (*source.Set, error) {
	type listed struct {
		set *source.Set
		err error
	}
	ch := make(chan listed, 1)
	go func() {
		set, err := o.discover(ctx, logger)
		ch <- listed{set, err}
	}()
	return sync.OnceValues(func() (*source.Set, error) {
		r := <-ch
		return r.set, r.err
	})
}

// discover finds the snapshot's files: HBase with --hbase-root, else
// Cassandra.
func (o *backupOptions) discover(ctx context.Context, logger *slog.Logger) (*source.Set, error) {
	if o.hbaseRoot != "" {
		if len(o.dataDirs) > 0 || o.tag != "" {
			return nil, &usageError{errors.New("--hbase-root backs up HBase snapshots: do not combine it with --data-dir or --tag")}
		}
		if len(o.hbaseSnaps) == 0 {
			return nil, &usageError{errors.New("--hbase-root needs --hbase-snapshot NAME (repeatable) or --hbase-snapshot all")}
		}
		set, err := hbase.DiscoverGroups(ctx, hbase.Options{Root: o.hbaseRoot, Snapshots: o.hbaseSnaps})
		if err != nil {
			return nil, fmt.Errorf("find HBase snapshot: %w", err)
		}
		return set, nil
	}
	if len(o.dataDirs) == 0 || o.tag == "" {
		return nil, &usageError{errors.New("set --data-dir and --tag (Cassandra), or --hbase-root and --hbase-snapshot (HBase)")}
	}
	set, err := cassandra.DiscoverGroups(ctx, cassandra.Options{
		DataDirs: o.dataDirs, Tag: o.tag, Keyspaces: o.keyspaces, Tables: o.tables, IncludeSystem: o.includeSystem,
		Logger: logger,
	})
	var tag *cassandra.TagNotFoundError
	if err != nil && !errors.As(err, &tag) {
		return nil, fmt.Errorf("find snapshot: %w", err)
	}
	return set, err
}
