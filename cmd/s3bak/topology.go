package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"

	"github.com/s3bak/s3bak/pkg/cassandra"
	"github.com/s3bak/s3bak/pkg/source"
)

// recordTopology adds the node's topology (nodetool) and its CQL schema
// (cqlsh) to a Cassandra backup's manifest metadata. Nothing here fails
// the backup: what nodetool cannot tell is recorded as unknown, a schema
// cqlsh cannot give is left out (each table's schema.cql is in the
// snapshot), and each is a warning.
func (o *backupOptions) recordTopology(ctx context.Context, logger *slog.Logger, set *source.Set) error {
	if !o.topology || set.Kind != "cassandra" {
		return nil
	}
	words, err := cassandra.SplitCommand(o.nodetool)
	if err != nil {
		return &usageError{fmt.Errorf("--nodetool: %w", err)}
	}
	cqlsh, err := cassandra.SplitCommand(o.cqlsh)
	if err != nil {
		return &usageError{fmt.Errorf("--cqlsh: %w", err)}
	}
	timeout := min(o.nodetoolTimeout, cassandra.DefaultTopologyTimeout)
	topo, errs := cassandra.Nodetool{Command: words, Timeout: timeout}.ReadTopology(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if set.Meta == nil {
		set.Meta = map[string]string{}
	}
	maps.Copy(set.Meta, topo.Meta())
	if len(errs) > 0 {
		logger.Warn("the node's topology is recorded as unknown where nodetool could not tell it; the backup goes on",
			"error", errors.Join(errs...).Error(), "host_id", topo.HostID, "dc", topo.DC, "tokens", len(topo.Tokens))
	} else {
		logger.Info("topology recorded", "cluster_name", topo.ClusterName, "dc", topo.DC, "rack", topo.Rack,
			"host_id", topo.HostID, "listen_address", topo.ListenAddress, "version", topo.Version, "tokens", len(topo.Tokens))
	}
	schema, err := cassandra.DescribeSchema(ctx, cqlsh, timeout)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		logger.Warn("the full CQL schema is not recorded (each table's schema.cql is in the snapshot); the backup goes on", "error", err.Error())
		return nil
	}
	set.Meta[cassandra.MetaSchema] = schema
	logger.Info("CQL schema recorded", "bytes", len(schema), "statements", strings.Count(schema, ";"))
	return nil
}
