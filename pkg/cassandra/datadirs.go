package cassandra

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// BackupFile is a file of a backup as a restore plans it: its manifest path
// (<ks>/<table>-<id>/…) and size.
type BackupFile struct {
	Path string
	Size int64
}

// TableDir is one table directory of a backup, <ks>/<table>-<id>.
type TableDir struct {
	Keyspace, Table, ID string
	Files               int
	Bytes               int64
}

// Dir is the table directory's manifest path, <ks>/<table>-<id>.
func (t TableDir) Dir() string { return t.Keyspace + "/" + t.dirName() }

func (t TableDir) dirName() string {
	if t.ID == "" {
		return t.Table // a table from before 2.1: no id in its directory name
	}
	return t.Table + "-" + t.ID
}

// Name is ks.table.
func (t TableDir) Name() string { return t.Keyspace + "." + t.Table }

// splitTableDir splits a table directory's name on its last "-" (names
// are \w+, so the id is what follows it).
func splitTableDir(dir string) (table, id string) {
	if i := strings.LastIndexByte(dir, '-'); i > 0 {
		return dir[:i], dir[i+1:]
	}
	return dir, ""
}

// Tables groups a backup's files by table directory, sorted by path.
// Only files a live table directory may hold count (LiveFile).
func Tables(files []BackupFile) []TableDir {
	byDir := map[string]*TableDir{}
	for _, f := range files {
		if !LiveFile(f.Path) {
			continue
		}
		parts := strings.SplitN(f.Path, "/", 3)
		d := parts[0] + "/" + parts[1]
		t := byDir[d]
		if t == nil {
			table, id := splitTableDir(parts[1])
			t = &TableDir{Keyspace: parts[0], Table: table, ID: id}
			byDir[d] = t
		}
		t.Files++
		t.Bytes += f.Size
	}
	out := make([]TableDir, 0, len(byDir))
	for _, t := range byDir {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b TableDir) int { return strings.Compare(a.Dir(), b.Dir()) })
	return out
}

// LiveFile tells whether a backup path is an sstable component that
// belongs in a live table directory: <ks>/<table-dir>/<sstable file>, or
// one of a secondary index's in <ks>/<table-dir>/.<index>/. A snapshot's
// manifest.json and schema.cql never go there: Cassandra did not write them
// to a live directory, and schema.cql is to be run, not loaded.
func LiveFile(p string) bool {
	parts := strings.Split(p, "/")
	switch {
	case len(parts) == 3:
	case len(parts) == 4 && strings.HasPrefix(parts[2], ".") && len(parts[2]) > 1:
	default:
		return false
	}
	_, ok := ParseSSTableName(parts[len(parts)-1])
	return ok
}

// nodeLocalKeyspaces hold a node's own identity and view of the cluster
// (host id, tokens, peers, local schema): put into another host's data
// directories they make it impersonate the backed-up node.
var nodeLocalKeyspaces = map[string]bool{"system": true, "system_schema": true, "system_cluster_metadata": true, "system_accord": true}

// IntoDataDirsFilter keeps what a restore into data directories writes:
// the sstables (LiveFile) that user keeps (nil: all), leaving out the
// node-local keyspaces unless keyspaces names them.
func IntoDataDirsFilter(user func(string) bool, keyspaces []string) func(string) bool {
	return func(p string) bool {
		ks, _, _ := strings.Cut(p, "/")
		if nodeLocalKeyspaces[ks] && !slices.Contains(keyspaces, ks) {
			return false
		}
		return (user == nil || user(p)) && LiveFile(p)
	}
}

// IDMismatch is a table whose live directory on this node has another
// table id than the backup's: the table was dropped and created again, or
// the schema was created anew, after the backup.
type IDMismatch struct {
	Table   TableDir
	DataDir string
	LiveIDs []string // the ids of the table's directories in DataDir
}

func (m IDMismatch) Error() string {
	return fmt.Sprintf("table %s: the backup's directory is %s, this node has %s in %s (the table was created again since the backup, so its id changed)",
		m.Table.Name(), m.Table.dirName(), strings.Join(m.liveDirs(), ", "), m.DataDir)
}

func (m IDMismatch) liveDirs() []string {
	var dirs []string
	for _, id := range m.LiveIDs {
		dirs = append(dirs, TableDir{Table: m.Table.Table, ID: id}.dirName())
	}
	return dirs
}

// Fix tells the operator the two ways out.
func (m IDMismatch) Fix() string {
	return fmt.Sprintf("either restore into the live directory (--into-live-table-ids), or give the table the backup's id: "+
		"DROP TABLE %s, then CREATE it with the backup's schema.cql (it says WITH ID = %s) before Cassandra starts again",
		m.Table.Name(), UUID(m.Table.ID))
}

// UUID writes a table id (32 hex digits, as in directory names) in the
// dashed form CQL takes.
func UUID(id string) string {
	if len(id) != 32 {
		return id
	}
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}

// Placement is where each table of a backup goes among a node's data
// directories.
type Placement struct {
	DataDirs []string
	// Dir is, per table directory of the backup (TableDir.Dir), the
	// absolute directory its files go into.
	Dir        map[string]string
	Mismatches []IDMismatch
}

// PlaceTables chooses a data directory for each table. A table whose
// directory (with the backup's id) exists already goes there, so its
// sstables join the others on that disk; a table new to the node goes to
// the data directory given the fewest bytes so far, largest tables first,
// so the disks fill evenly (Cassandra reads sstables from any of its data
// directories). A table that has directories only with other ids is a
// mismatch; with intoLive it goes into its one live directory instead.
func PlaceTables(dataDirs []string, tables []TableDir, intoLive bool) (*Placement, error) {
	if len(dataDirs) == 0 {
		return nil, errors.New("no data directory: give --data-dir for every data_file_directories entry of cassandra.yaml")
	}
	p := &Placement{DataDirs: dataDirs, Dir: map[string]string{}}
	load := make([]int64, len(dataDirs))
	bySize := slices.Clone(tables)
	slices.SortStableFunc(bySize, func(a, b TableDir) int { return cmp.Compare(b.Bytes, a.Bytes) })
	for _, t := range bySize {
		d, dir, mismatch, err := placeTable(dataDirs, t, intoLive)
		if err != nil {
			return nil, err
		}
		if mismatch != nil {
			p.Mismatches = append(p.Mismatches, *mismatch)
			continue
		}
		if d < 0 {
			d = slices.Index(load, slices.Min(load))
			dir = filepath.Join(dataDirs[d], t.Keyspace, t.dirName())
		}
		load[d] += t.Bytes
		p.Dir[t.Dir()] = dir
	}
	slices.SortFunc(p.Mismatches, func(a, b IDMismatch) int { return strings.Compare(a.Table.Dir(), b.Table.Dir()) })
	return p, nil
}

// placeTable finds t's existing directory: the data directory's index and
// the directory, -1 when the node has none, or a mismatch.
func placeTable(dataDirs []string, t TableDir, intoLive bool) (int, string, *IDMismatch, error) {
	var first *IDMismatch
	for i, d := range dataDirs {
		ids, err := liveIDs(d, t)
		if err != nil {
			return 0, "", nil, err
		}
		if slices.Contains(ids, t.ID) {
			return i, filepath.Join(d, t.Keyspace, t.dirName()), nil, nil
		}
		if len(ids) > 0 && first == nil {
			first = &IDMismatch{Table: t, DataDir: d, LiveIDs: ids}
		}
	}
	if first == nil {
		return -1, "", nil, nil
	}
	if !intoLive {
		return 0, "", first, nil
	}
	if len(first.LiveIDs) > 1 {
		return 0, "", nil, fmt.Errorf("%w; several directories of the table are there: keep the live one (SELECT id FROM system_schema.tables WHERE keyspace_name = '%s' AND table_name = '%s'), move the others away, and run the restore again",
			first, t.Keyspace, t.Table)
	}
	i := slices.Index(dataDirs, first.DataDir)
	return i, filepath.Join(first.DataDir, t.Keyspace, TableDir{Table: t.Table, ID: first.LiveIDs[0]}.dirName()), nil, nil
}

// liveIDs lists the ids of t's table directories in the data directory d
// (a directory with the table's name and any id; "" for one without).
func liveIDs(d string, t TableDir) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(d, t.Keyspace))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the data directory: %w", err)
	}
	var ids []string
	for _, e := range entries {
		table, id := splitTableDir(e.Name())
		if table == t.Table && isDir(filepath.Join(d, t.Keyspace, e.Name())) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p) // a linked table directory counts
	return err == nil && fi.IsDir()
}

// MismatchError reports every mismatched table with its fix.
func (p *Placement) MismatchError() error {
	if len(p.Mismatches) == 0 {
		return nil
	}
	lines := make([]string, 0, len(p.Mismatches))
	for _, m := range p.Mismatches {
		lines = append(lines, m.Error()+": "+m.Fix())
	}
	return fmt.Errorf("%d %s of the backup cannot go into this node's table directories:\n  %s",
		len(lines), plural(len(lines), "table"), strings.Join(lines, "\n  "))
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// ViewPath is where a backup path (<ks>/<table-dir>/rest) goes: its table
// directory's placement joined with the rest; "" for a path not placed.
func (p *Placement) ViewPath(backupPath string) string {
	parts := strings.SplitN(backupPath, "/", 3)
	if len(parts) < 3 {
		return ""
	}
	dir, ok := p.Dir[path.Join(parts[0], parts[1])]
	if !ok {
		return ""
	}
	return filepath.Join(dir, filepath.FromSlash(parts[2]))
}

// View is a directory of symbolic links, <view>/<ks>/<table-dir> → the
// table's placement, so that one restore into the view writes every table
// into its data directory — under the backup's directory names, also where
// the placement has the live id — verified and all or nothing, with the
// restore engine's refusal to replace existing files. The view is a
// temporary directory of its own, never under a data directory.
type View struct {
	Dir     string
	links   []string // the view's links, absolute
	dirs    []string // the view's directories, in creation order
	created []string // data-directory directories made for the placement, in creation order
}

// NewView makes the view of p, creating the table directories that do not
// exist yet (mode 0755; chown them to Cassandra's user before it starts).
func NewView(p *Placement) (v *View, err error) {
	dir, err := os.MkdirTemp("", "s3bak-data-dirs-")
	if err != nil {
		return nil, fmt.Errorf("make the restore's view of the data directories: %w", err)
	}
	v = &View{Dir: dir, dirs: []string{dir}}
	defer func() {
		if err != nil {
			v.Close(true)
		}
	}()
	for _, d := range slices.Sorted(maps.Keys(p.Dir)) {
		if err := v.mkdirAll(p.Dir[d], &v.created); err != nil {
			return v, fmt.Errorf("make table directory: %w", err)
		}
		link := filepath.Join(dir, filepath.FromSlash(d))
		if err := v.mkdirAll(filepath.Dir(link), &v.dirs); err != nil {
			return v, err
		}
		if err := os.Symlink(p.Dir[d], link); err != nil {
			return v, fmt.Errorf("make the restore's view of the data directories: %w", err)
		}
		v.links = append(v.links, link)
	}
	return v, nil
}

// mkdirAll is os.MkdirAll that appends each directory it creates to made.
func (v *View) mkdirAll(dir string, made *[]string) error {
	if isDir(dir) {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := v.mkdirAll(parent, made); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	*made = append(*made, dir)
	return nil
}

// Close removes the view: its links (never what they lead to) and its
// directories. After a failed restore (failed) it also removes the table
// directories NewView created, those that are empty.
func (v *View) Close(failed bool) {
	for _, l := range v.links {
		os.Remove(l) // the link only: os.Remove does not follow it
	}
	for _, d := range slices.Backward(v.dirs) {
		os.Remove(d)
	}
	if failed {
		for _, d := range slices.Backward(v.created) {
			os.Remove(d) // fails, and keeps it, unless empty
		}
	}
}
