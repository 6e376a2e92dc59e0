// Package hbase turns HBase snapshots on a local (or mounted) hbase.rootdir
// into a source.Set whose Paths form exactly the tree HBase's ExportSnapshot
// writes to its destination:
//
//	.hbase-snapshot/<name>/…                          the snapshot directory, copied whole
//	archive/data/<ns>/<table>/<region>/<cf>/<hfile>   every store file it needs
//
// Restoring the Set to a directory therefore yields a "mini rootdir" that
// HBase accepts once it is moved into hbase.rootdir (see RestoreSteps).
package hbase

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/s3bak/s3bak/pkg/source"
)

// All selects every completed snapshot in Options.Snapshots.
const All = "all"

// Options selects what Discover backs up.
type Options struct {
	// Root is hbase.rootdir as a local path (file://, NFS, FUSE-mounted HDFS).
	Root string
	// Snapshots are snapshot names, or just All.
	Snapshots []string
}

// Snapshot types (SnapshotDescription.Type).
const (
	TypeDisabled  int32 = 0
	TypeFlush     int32 = 1
	TypeSkipFlush int32 = 2
)

// SnapshotInfo is a decoded .snapshotinfo (SnapshotDescription).
type SnapshotInfo struct {
	Name         string
	Table        string // "ns:table", or "table" in the default namespace
	CreationTime int64  // epoch milliseconds
	Type         int32  // TypeDisabled, TypeFlush or TypeSkipFlush
	Version      int32  // 2 for current snapshots, 0 for the old v1 layout
	Owner        string
	TTL          int64 // seconds after CreationTime; 0 or less: no expiry of its own
}

// TypeName is the snapshot type as HBase prints it.
func (s SnapshotInfo) TypeName() string {
	switch s.Type {
	case TypeDisabled:
		return "DISABLED"
	case TypeSkipFlush:
		return "SKIPFLUSH"
	}
	return "FLUSH"
}

// Discover reads the selected snapshots and resolves every file they need.
// It fails, with no Set, if any needed file is missing or any snapshot file
// is corrupt: a partial HBase backup cannot be restored.
func Discover(ctx context.Context, o Options) (*source.Set, error) {
	r, err := openRoot(o.Root)
	if err != nil {
		return nil, err
	}
	if err := checkSnapshotDir(r); err != nil {
		return nil, err
	}
	names, err := selectSnapshots(r, o.Snapshots)
	if err != nil {
		return nil, err
	}
	set := &source.Set{Kind: "hbase", Tag: strings.Join(names, ","), Meta: map[string]string{
		"rootdir": r.dir, "snapshots": strings.Join(names, ","),
	}}
	byPath := map[string]source.File{}
	var tables []string
	for _, name := range names {
		s, err := loadSnapshot(ctx, r, name)
		if err != nil {
			return nil, fmt.Errorf("hbase: snapshot %q: %w", name, err)
		}
		hfiles, err := r.storeFiles(ctx, s)
		if err != nil {
			return nil, err
		}
		// HFiles shared by several snapshots resolve identically: keep one.
		for _, f := range s.files {
			byPath[f.Path] = f
		}
		for _, f := range hfiles {
			byPath[f.Path] = f
		}
		addMeta(set.Meta, s.info)
		tables = append(tables, s.info.Table)
	}
	slices.Sort(tables)
	set.Meta["tables"] = strings.Join(slices.Compact(tables), ",")
	for _, f := range byPath {
		if err := source.CheckPath(f.Path); err != nil {
			return nil, fmt.Errorf("hbase: %w", err)
		}
		set.Files = append(set.Files, f)
	}
	// Sorted, the snapshot directories (".hbase-snapshot/…") come before
	// "archive/…": the order HBase wants them in place.
	slices.SortFunc(set.Files, func(a, b source.File) int { return strings.Compare(a.Path, b.Path) })
	return set, nil
}

func checkSnapshotDir(r *fsRoot) error {
	fi, err := os.Stat(r.abs(snapshotDir))
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("hbase: %s has no %s directory: is it hbase.rootdir?", r.dir, snapshotDir)
	}
	return nil
}

// selectSnapshots validates the requested names against the completed
// snapshots, dropping duplicates.
func selectSnapshots(r *fsRoot, want []string) ([]string, error) {
	have, err := listSnapshots(r)
	if err != nil {
		return nil, fmt.Errorf("hbase: listing snapshots: %w", err)
	}
	existing := "none"
	if len(have) > 0 {
		existing = strings.Join(have, ", ")
	}
	if len(want) == 1 && want[0] == All {
		if len(have) == 0 {
			return nil, fmt.Errorf("hbase: no completed snapshots under %s", r.abs(snapshotDir))
		}
		return have, nil
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("hbase: no snapshot selected; existing snapshots: %s", existing)
	}
	var names []string
	for _, n := range want {
		if n == All {
			return nil, errors.New(`hbase: "all" cannot be combined with snapshot names`)
		}
		if !slices.Contains(have, n) {
			return nil, fmt.Errorf("hbase: no completed snapshot %q under %s; existing snapshots: %s",
				n, r.abs(snapshotDir), existing)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names, nil
}

// addMeta records what restore needs to know without the files:
// snapshot.<name>.{table,created,version,ttl}.
func addMeta(m map[string]string, s SnapshotInfo) {
	p := "snapshot." + s.Name + "."
	m[p+"table"] = s.Table
	m[p+"created"] = strconv.FormatInt(s.CreationTime, 10)
	m[p+"version"] = strconv.Itoa(int(s.Version))
	m[p+"type"] = s.TypeName()
	if s.TTL != 0 {
		m[p+"ttl"] = strconv.FormatInt(s.TTL, 10)
	}
}
