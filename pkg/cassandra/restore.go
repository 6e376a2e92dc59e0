package cassandra

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Filter keeps the restored paths (<ks>/<table>-<id>/…) of the given
// keyspaces and tables; nil when there is nothing to filter.
func Filter(keyspaces, tables []string) func(string) bool {
	if len(keyspaces) == 0 && len(tables) == 0 {
		return nil
	}
	return func(p string) bool {
		ks, rest, ok := strings.Cut(p, "/")
		if !ok {
			return false
		}
		tableDir, _, _ := strings.Cut(rest, "/")
		if len(keyspaces) > 0 && !slices.Contains(keyspaces, ks) {
			return false
		}
		t := TableName(tableDir)
		return len(tables) == 0 || slices.Contains(tables, t) || slices.Contains(tables, ks+"."+t)
	}
}

// RestoreSteps tells the operator how to load restored files into
// Cassandra, one command per table directory. paths are the restored
// files' directories (or the files: <ks>/<table>-<id>/… either way).
func RestoreSteps(target string, paths []string) string {
	var dirs []string
	for _, p := range paths {
		parts := strings.SplitN(p, "/", 3)
		if len(parts) < 2 {
			continue
		}
		d := path.Join(parts[0], parts[1])
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	var b strings.Builder
	b.WriteString("\nTo load the restored sstables (schema first: run each table's schema.cql if the table does not exist):\n")
	b.WriteString("  Cassandra 4.0+:  nodetool import KEYSPACE TABLE DIR   (moves the files in; add --copy-data to keep them)\n")
	for _, d := range dirs {
		ks, tdir := path.Split(d)
		fmt.Fprintf(&b, "    nodetool import %s %s %s\n", strings.TrimSuffix(ks, "/"), TableName(tdir), filepath.Join(target, filepath.FromSlash(d)))
	}
	b.WriteString("  Cassandra 3.x:   copy each directory's files into the live table directory, then: nodetool refresh KEYSPACE TABLE\n")
	return b.String()
}
