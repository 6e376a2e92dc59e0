package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/source"
)

// topology is the node's topology (nodetool) and CQL schema (cqlsh), read
// in the background while a Cassandra backup stores its files: only the
// manifest needs them. On a live node every nodetool call starts a JVM
// and connects over JMX (a second or more each, four of them) and cqlsh
// starts Python: several seconds that a backup would otherwise wait before
// its first byte, on every node of the fleet, every night.
//
// Nothing here fails the backup: what nodetool cannot tell is recorded as
// unknown, a schema cqlsh cannot give is left out (each table's
// schema.cql is in the snapshot), and each is a warning.
type topology struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// Each written by one reader, read once wg is done.
	meta   map[string]string
	schema string
}

// readTopology starts reading the topology of a Cassandra backup's node;
// nil (nothing to wait for) with --topology=false or for HBase.
func (o *backupOptions) readTopology(ctx context.Context, logger *slog.Logger, set *source.Set) (*topology, error) {
	if !o.topology || set.Kind != "cassandra" {
		return nil, nil
	}
	words, err := cassandra.SplitCommand(o.nodetool)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--nodetool: %w", err)}
	}
	cqlsh, err := cassandra.SplitCommand(o.cqlsh)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--cqlsh: %w", err)}
	}
	timeout := min(o.nodetoolTimeout, cassandra.DefaultTopologyTimeout)
	ctx, cancel := context.WithCancel(ctx)
	t := &topology{cancel: cancel}
	// nodetool's calls follow one another (status needs info's host ID);
	// cqlsh asks another server, the node's CQL port, beside them.
	t.wg.Go(func() {
		topo, errs := cassandra.Nodetool{Command: words, Timeout: timeout}.ReadTopology(ctx)
		if ctx.Err() != nil {
			return
		}
		t.meta = topo.Meta()
		if len(errs) > 0 {
			logger.Warn("the node's topology is recorded as unknown where nodetool could not tell it; the backup goes on",
				"error", errors.Join(errs...).Error(), "host_id", topo.HostID, "dc", topo.DC, "tokens", len(topo.Tokens))
			return
		}
		logger.Info("topology recorded", "cluster_name", topo.ClusterName, "dc", topo.DC, "rack", topo.Rack,
			"host_id", topo.HostID, "listen_address", topo.ListenAddress, "version", topo.Version, "tokens", len(topo.Tokens))
	})
	t.wg.Go(func() {
		schema, err := cassandra.DescribeSchema(ctx, cqlsh, timeout)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			logger.Warn("the full CQL schema is not recorded (each table's schema.cql is in the snapshot); the backup goes on", "error", err.Error())
			return
		}
		t.schema = schema
		logger.Info("CQL schema recorded", "bytes", len(schema), "statements", strings.Count(schema, ";"))
	})
	return t, nil
}

// addTo waits for the reads and adds what they found to m's metadata:
// the manifest is about to be written. Each read is bounded by
// --nodetool-timeout (at most cassandra.DefaultTopologyTimeout a call).
func (t *topology) addTo(ctx context.Context, m *manifest.Manifest) error {
	if t == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.stop()
		return ctx.Err()
	}
	if m.Meta == nil {
		m.Meta = map[string]string{}
	}
	maps.Copy(m.Meta, t.meta)
	if t.schema != "" {
		m.Meta[cassandra.MetaSchema] = t.schema
	}
	return nil
}

// stop ends the reads still running (their commands are killed) and waits
// for them: a backup that failed leaves no nodetool behind.
func (t *topology) stop() {
	if t == nil {
		return
	}
	t.cancel()
	t.wg.Wait()
}
