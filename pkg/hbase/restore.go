package hbase

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// SnapshotsFromMeta rebuilds the snapshot list recorded by Discover in
// Set.Meta, for restore-time use when only the backup manifest is at hand.
func SnapshotsFromMeta(meta map[string]string) ([]SnapshotInfo, error) {
	list := meta["snapshots"]
	if list == "" {
		return nil, fmt.Errorf("hbase: backup metadata names no snapshots")
	}
	var out []SnapshotInfo
	for _, name := range strings.Split(list, ",") {
		if err := validSnapshotName(name); err != nil {
			return nil, fmt.Errorf("hbase: backup metadata: %w", err)
		}
		p := "snapshot." + name + "."
		s := SnapshotInfo{Name: name, Table: meta[p+"table"], Type: TypeFlush}
		if _, err := parseTableName(s.Table); err != nil {
			return nil, fmt.Errorf("hbase: backup metadata for snapshot %q: %w", name, err)
		}
		var err error
		if v := meta[p+"created"]; v != "" {
			s.CreationTime, err = strconv.ParseInt(v, 10, 64)
		}
		if v := meta[p+"ttl"]; v != "" && err == nil {
			s.TTL, err = strconv.ParseInt(v, 10, 64)
		}
		if v := meta[p+"version"]; v != "" && err == nil {
			var n int64
			n, err = strconv.ParseInt(v, 10, 32)
			s.Version = int32(n)
		}
		if err != nil {
			return nil, fmt.Errorf("hbase: backup metadata for snapshot %q: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// RestoreSteps returns the operator's instructions for putting a restored
// tree (target: where s3bak wrote the Set) into HBase. The tree is what
// ExportSnapshot produces, so HBase's own tool can finish the job; a manual
// copy must put .hbase-snapshot/<name>/ in place before archive/, or the
// master's HFile cleaner may delete archived HFiles no snapshot references
// yet (it spares files younger than hbase.master.hfilecleaner.ttl, 5 min).
func RestoreSteps(snaps []SnapshotInfo, target string) string {
	if abs, err := filepath.Abs(target); err == nil {
		target = abs // file:// URLs need an absolute path
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("HBase snapshots restored to %s (an ExportSnapshot-style tree):", target)
	for _, s := range snaps {
		w("  %s  (table %s)", s.Name, s.Table)
	}
	w("\nHBase sees them once they are inside hbase.rootdir ($HBASE_ROOTDIR below), as the hbase user.")
	w("\nEither let HBase copy them (any hbase.rootdir: HDFS, S3, local); it copies the snapshot")
	w("directory first, then the HFiles, then verifies:")
	for _, s := range snaps {
		w("  hbase org.apache.hadoop.hbase.snapshot.ExportSnapshot -Dmapreduce.framework.name=local \\")
		w("    -snapshot %s -copy-from file://%s -copy-to $HBASE_ROOTDIR", s.Name, target)
	}
	w("\nOr, if hbase.rootdir is a local or mounted file system, copy in this order, promptly:")
	w("  1. the snapshot directories, each made visible by one rename (mv -T fails rather than")
	w("     nest if HBase already has a snapshot of that name: delete_snapshot it first):")
	w("       mkdir -p $HBASE_ROOTDIR/.hbase-snapshot/.tmp")
	for _, s := range snaps {
		w("       cp -a %s/.hbase-snapshot/%s $HBASE_ROOTDIR/.hbase-snapshot/.tmp/ &&", target, s.Name)
		w("         mv -T $HBASE_ROOTDIR/.hbase-snapshot/.tmp/%s $HBASE_ROOTDIR/.hbase-snapshot/%s", s.Name, s.Name)
	}
	w("  2. then the HFiles, never overwriting files HBase already has:")
	w("       rsync -a --ignore-existing %s/archive/ $HBASE_ROOTDIR/archive/", target)
	w("  3. chown -R the copied files to the hbase user if you copied as another user.")
	w("\nThen, in hbase shell:")
	w("  list_snapshots")
	for _, s := range snaps {
		w("  # %s: either clone into a new table (its namespace must exist) ...", s.Name)
		w("  clone_snapshot '%s', '%s_restored'", s.Name, s.Table)
		w("  # ... or roll the existing table back to the snapshot:")
		w("  disable '%s'", s.Table)
		w("  restore_snapshot '%s'", s.Name)
		w("  enable '%s'", s.Table)
		if s.TTL > 0 {
			w("  # %s has a TTL of %ds from its creation: once expired HBase refuses to clone it and", s.Name, s.TTL)
			w("  # deletes it; use ExportSnapshot -reset-ttl above to drop the TTL.")
		}
	}
	return b.String()
}

// Where tells on which host to run RestoreSteps and how to give them the
// cluster's HBase root: s3bak restored the tree onto this host's disk,
// while hbase.rootdir is usually in HDFS, which only a host with the
// cluster's Hadoop and HBase configuration reaches. root is restore's
// --hbase-root ("": a placeholder to fill in).
func Where(target, root string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run these steps on this host (the restored tree is in %s) as the hbase user, with the target cluster's\n", target)
	b.WriteString("hbase-site.xml and core-site.xml (as on an HBase master or gateway host), or copy the tree to such a host first.\n")
	if root == "" {
		b.WriteString("Set HBASE_ROOTDIR to the cluster's hbase.rootdir (or give restore --hbase-root):\n")
		b.WriteString("  HBASE_ROOTDIR=hdfs://NAMENODE:8020/hbase   # HDFS: the ExportSnapshot step below copies into it\n")
		b.WriteString("  HBASE_ROOTDIR=/mnt/hbase                   # a local or mounted root (what backup --hbase-root reads): either step\n\n")
		return b.String()
	}
	fmt.Fprintf(&b, "  HBASE_ROOTDIR=%s\n", shellQuote(root))
	if strings.Contains(root, "://") && !strings.HasPrefix(root, "file://") {
		b.WriteString("  (not a mounted path: use the ExportSnapshot step)\n")
	}
	b.WriteString("\n")
	return b.String()
}

// shellQuote makes s one shell word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
