package cassandra

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/s3bak/s3bak/pkg/source"
)

// SSTableName is a parsed "<version>-<id>-<format>-<Component>" file name.
type SSTableName struct {
	Version, ID, Format, Component string
}

// ParseSSTableName parses the 2.2+ file-name grammar. The id is a decimal
// generation or, since 4.1, a 28-character time-based id.
func ParseSSTableName(name string) (SSTableName, bool) {
	parts := strings.SplitN(name, "-", 4)
	if len(parts) != 4 || len(parts[0]) != 2 || parts[1] == "" || parts[3] == "" {
		return SSTableName{}, false
	}
	if parts[2] != "big" && parts[2] != "bti" {
		return SSTableName{}, false
	}
	return SSTableName{Version: parts[0], ID: parts[1], Format: parts[2], Component: parts[3]}, true
}

// Prefix groups the components of one sstable.
func (n SSTableName) Prefix() string { return n.Version + "-" + n.ID + "-" + n.Format + "-" }

// renameCollisions gives a fresh generation to sstables whose names clash
// with another data directory's: integer generations restart per data
// directory, but the restored layout merges them into one table directory.
// `nodetool refresh` renames generations the same way, and no component's
// content depends on its generation. Other clashing files (manifest.json,
// schema.cql) get a ".dataN" suffix, so nothing is dropped.
//
// Clashing paths are found by sorting the files by path (stable: the first
// data directory's file keeps its name), not with a map of every path.
func renameCollisions(files []source.File) ([]source.File, error) {
	slices.SortStableFunc(files, func(a, b source.File) int { return source.ComparePaths(a.Path, b.Path) })
	// Most tables are in one data directory, and nothing clashes: no name
	// is parsed (it was a sixth of a table's listing).
	if !clashes(files) {
		return files, nil
	}
	maxGen := map[string]int{} // restored directory → highest integer generation
	for _, f := range files {
		if n, ok := ParseSSTableName(path.Base(f.Path)); ok {
			if g, err := strconv.Atoi(n.ID); err == nil {
				d := path.Dir(f.Path)
				maxGen[d] = max(maxGen[d], g)
			}
		}
	}
	type group struct{ srcDir, prefix string }
	renamed := map[group]string{} // → new prefix
	prev := ""
	for i := range files {
		f := &files[i]
		clash := i > 0 && f.Path == prev
		prev = f.Path
		if !clash {
			continue
		}
		dir, base := path.Dir(f.Path), path.Base(f.Path)
		n, ok := ParseSSTableName(base)
		if !ok {
			f.Rename(fmt.Sprintf("%s.data%d", f.Path, i))
		} else {
			if _, err := strconv.Atoi(n.ID); err != nil {
				return nil, fmt.Errorf("sstable %s exists in two data directories with the same id %s", base, n.ID)
			}
			g := group{f.Dir, n.Prefix()}
			np, ok := renamed[g]
			if !ok {
				maxGen[dir]++
				np = fmt.Sprintf("%s-%d-%s-", n.Version, maxGen[dir], n.Format)
				renamed[g] = np
			}
			f.Rename(dir + "/" + np + n.Component)
		}
	}
	// A component that did not clash itself must follow its group's rename.
	// (A name still taken twice is refused by source.Set.Check.)
	out := files
	for i, f := range out {
		n, ok := ParseSSTableName(path.Base(f.Path))
		if !ok {
			continue
		}
		if np, ok := renamed[group{f.Dir, n.Prefix()}]; ok {
			out[i].Rename(path.Dir(f.Path) + "/" + np + n.Component)
		}
	}
	return out, nil
}

// clashes reports whether two of files, sorted by path, have the same path.
func clashes(files []source.File) bool {
	for i := 1; i < len(files); i++ {
		if files[i].Path == files[i-1].Path {
			return true
		}
	}
	return false
}
