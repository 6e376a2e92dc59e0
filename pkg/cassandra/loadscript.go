package cassandra

import (
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// The loaders a load script uses.
const (
	LoaderNodetool      = "nodetool"      // nodetool import (4.0+) or refresh (3.x), on the node itself
	LoaderSSTableLoader = "sstableloader" // streams to the owning replicas of any cluster
)

// TokenMatch compares this host's tokens with the backup's, for nodetool
// import's token check.
type TokenMatch struct {
	Known      bool   // both token lists were known
	Same       bool   // the same set
	Backup     int    // tokens of the backup's node
	Host       int    // tokens of this host
	Shared     int    // tokens in both
	Why        string // why they are not Known
	HostTokens []string
}

// CompareTokens compares the backup's recorded tokens with this host's.
func CompareTokens(backup, host []string) TokenMatch {
	m := TokenMatch{Known: len(backup) > 0 && len(host) > 0, Backup: len(backup), Host: len(host), HostTokens: host}
	in := map[string]bool{}
	for _, t := range backup {
		in[t] = true
	}
	for _, t := range host {
		if in[t] {
			m.Shared++
		}
	}
	m.Same = m.Known && m.Shared == len(backup) && m.Shared == len(host)
	switch {
	case len(backup) == 0:
		m.Why = "the backup recorded no tokens"
	case len(host) == 0:
		m.Why = "nodetool info -T gave no tokens on this host"
	}
	return m
}

// LoadScript is a shell script that loads restored sstables into Cassandra,
// written for an operator to review before running it.
type LoadScript struct {
	Backup    string // what was restored, e.g. "backup … (tag day2) of prod/n2"
	Generated string // by what and when
	Target    string // the restored tree, absolute
	Tables    []TableDir
	Loader    string   // LoaderNodetool or LoaderSSTableLoader
	Hosts     []string // sstableloader -d
	Major     int      // Cassandra's major version (nodetool): 3 refreshes, 4+ imports
	VersionOf string   // where Major came from, for the header
	Nodetool  []string // nodetool's command and fixed arguments
	// LiveDirs (3.x) is each table's live directory (by TableDir.Dir),
	// where refresh finds the files.
	LiveDirs map[string]string
	Tokens   TokenMatch
	// Nodes (sstableloader only) are several nodes' restored trees under
	// Target, restore --all-nodes: Target/<node>/<ks>/<table-dir>. Empty:
	// Tables, directly under Target.
	Nodes []NodeTables
}

// NodeTables are one node's restored tables.
type NodeTables struct {
	Node   string
	Tables []TableDir
}

// TableCount is the number of table directories the script loads.
func (s LoadScript) TableCount() int {
	n := 0
	for _, src := range s.sources() {
		n += len(src.Tables)
	}
	return n
}

// sources are the restored trees: (directory under Target, tables).
func (s LoadScript) sources() []NodeTables {
	if len(s.Nodes) > 0 {
		return s.Nodes
	}
	return []NodeTables{{Tables: s.Tables}}
}

// oneLine keeps a text written into a comment on its line: a newline in a
// path or an error message would end the comment and run the rest.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// Quote makes s one shell word: single quotes, and each single quote in s
// closes the quoting, is escaped with a backslash, and reopens it. Nothing is special inside single
// quotes, so any byte but NUL goes through.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func quoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// String is the script.
func (s LoadScript) String() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	s.header(w)
	switch {
	case s.Loader == LoaderSSTableLoader:
		s.sstableloader(w)
	case s.Major == 3:
		s.refresh(w)
	default:
		s.nodetoolImport(w)
	}
	w("")
	w("echo %s", Quote("loaded the tables of "+s.Backup))
	return b.String()
}

func (s LoadScript) header(w func(string, ...any)) {
	files, bytes, tables := 0, int64(0), s.TableCount()
	for _, src := range s.sources() {
		for _, t := range src.Tables {
			files += t.Files
			bytes += t.Bytes
		}
	}
	w("#!/usr/bin/env bash")
	w("# Loads into Cassandra the sstables of %s,", oneLine(s.Backup))
	w("# restored by s3bak into %s, with %s.", oneLine(s.Target), oneLine(s.method()))
	w("# Written by %s. Review it, then run it with bash on the host it names.", oneLine(s.Generated))
	w("#")
	w("# %d %s, %d sstable files, %d bytes. Each table must exist first, with its schema: run the", tables, plural(tables, "table"), files, bytes)
	w("# schema.cql of its restored directory with cqlsh where it does not. Only sstable components are")
	w("# loaded: a snapshot's manifest.json and schema.cql never go into a live table directory, and")
	w("# secondary indexes (.<index>/ directories) are rebuilt by Cassandra as it loads the sstables.")
	w("set -euo pipefail")
	w("")
	w("restored=%s", Quote(s.Target))
}

func (s LoadScript) method() string {
	switch {
	case s.Loader == LoaderSSTableLoader:
		return "sstableloader -d " + strings.Join(s.Hosts, ",")
	case s.Major == 3:
		return fmt.Sprintf("nodetool refresh (Cassandra 3.x, %s)", s.VersionOf)
	default:
		return fmt.Sprintf("nodetool import (Cassandra 4.0+, %s)", s.VersionOf)
	}
}

// nodetoolImport: one nodetool import per table.
func (s LoadScript) nodetoolImport(w func(string, ...any)) {
	w("")
	w("# Run on the node that loads the data (nodetool talks to it). nodetool import KEYSPACE TABLE DIR")
	w("# verifies the directory's sstables and moves them into the live table directory under fresh")
	w("# generations, never over a live sstable; the restored directory is left without them. Cassandra")
	w("# moves them itself: make them its user's first if the restore ran as another user, e.g.")
	w("# chown -R cassandra: \"$restored\"")
	w("# Options: Cassandra's src/java/org/apache/cassandra/tools/nodetool/Import.java (cassandra-4.0):")
	w("# -t/--no-tokens \"Don't verify that all tokens in the new sstable are owned by the current node\".")
	options := ""
	t := s.Tokens
	switch {
	case t.Same:
		w("# This host has the backup's %d tokens: import checks that every row belongs to them.", t.Backup)
	case t.Known:
		options = " --no-tokens"
		w("# This host's tokens differ from the backup's (the backup's node had %d, this host has %d, %d in", t.Backup, t.Host, t.Shared)
		w("# common): import would refuse sstables with rows of ranges this node does not own, so --no-tokens.")
		w("# Those rows are written here but never read (their replicas are other nodes), and nodetool cleanup")
		w("# removes them. To give every row to the replicas that own it in this cluster, load with")
		w("# sstableloader instead: s3bak restore --load-script FILE --loader sstableloader --loader-hosts HOSTS.")
	default:
		w("# This host's tokens could not be compared with the backup's (%s): import checks", oneLine(t.Why))
		w("# that every row belongs to this node and fails a table that has others. Then load with sstableloader")
		w("# (--loader sstableloader), or add --no-tokens below: rows this node does not own are never read.")
	}
	w("nodetool=(%s)", quoteAll(s.Nodetool))
	w("")
	w("import_table() { # KEYSPACE TABLE DIR")
	w("\tlocal ks=$1 table=$2 dir=$3")
	w("\t[[ -d $dir ]] || { echo \"load: no directory $dir\" >&2; exit 1; }")
	w("\techo \"importing $ks.$table from $dir\"")
	w("\t\"${nodetool[@]}\" import%s \"$ks\" \"$table\" \"$dir\"", options)
	w("}")
	w("")
	for _, tb := range s.Tables {
		w("import_table %s %s \"$restored\"/%s", Quote(tb.Keyspace), Quote(tb.Table), Quote(tb.Dir()))
	}
}

// refresh: Cassandra 3.x, whose nodetool has no import.
func (s LoadScript) refresh(w func(string, ...any)) {
	w("")
	w("# Run on the node that loads the data, as Cassandra's user: the copies it makes are Cassandra's files.")
	w("# Cassandra 3.x has no nodetool import: nodetool refresh loads the")
	w("# sstables it finds in the live table directory (and renames them to generations of its own,")
	w("# ColumnFamilyStore.loadNewSSTables). Copied there under their own names, restored sstables could")
	w("# replace live ones: generations restart per table and node. So each restored sstable is copied under")
	w("# a generation above every one in the live directory (%d more, room for flushes meanwhile), first to a", refreshGap)
	w("# hidden temporary name, then hard-linked to its final name: ln refuses a name that exists.")
	if s.Tokens.Known && !s.Tokens.Same {
		w("# This host's tokens differ from the backup's: rows of ranges this node does not own are loaded but")
		w("# never read, and nodetool cleanup removes them; sstableloader (--loader sstableloader) gives every")
		w("# row to its owners.")
	}
	w("nodetool=(%s)", quoteAll(s.Nodetool))
	w("sstable_re='^([a-z]{2})-([0-9]+)-(big|bti)-(.+)$'")
	w("")
	w("refresh_table() { # KEYSPACE TABLE RESTORED-DIR LIVE-DIR")
	w("\tlocal ks=$1 table=$2 src=$3 live=$4 f name max=0 next dst tmp")
	w("\t[[ -d $src ]] || { echo \"load: no directory $src\" >&2; exit 1; }")
	w("\t[[ -d $live ]] || { echo \"load: no live table directory $live: create the table (schema.cql) first\" >&2; exit 1; }")
	w("\tfor f in \"$live\"/*; do")
	w("\t\tname=${f##*/}")
	w("\t\tif [[ $name =~ $sstable_re ]] && (( 10#${BASH_REMATCH[2]} > max )); then max=$((10#${BASH_REMATCH[2]})); fi")
	w("\tdone")
	w("\tnext=$((max + %d))", refreshGap)
	w("\tlocal -A generation=()")
	w("\tfor f in \"$src\"/*; do")
	w("\t\tname=${f##*/}")
	w("\t\t[[ -f $f && $name =~ $sstable_re ]] || continue # manifest.json, schema.cql: never copied")
	w("\t\tlocal prefix=${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]}")
	w("\t\tif [[ -z ${generation[$prefix]:-} ]]; then next=$((next + 1)); generation[$prefix]=$next; fi")
	w("\t\tdst=$live/${BASH_REMATCH[1]}-${generation[$prefix]}-${BASH_REMATCH[3]}-${BASH_REMATCH[4]}")
	w("\t\ttmp=$live/.s3bak-load.$name.tmp")
	w("\t\tcp -- \"$f\" \"$tmp\"")
	w("\t\tif ! ln -- \"$tmp\" \"$dst\"; then rm -f -- \"$tmp\"; echo \"load: $dst exists: nothing replaced, stopping\" >&2; exit 1; fi")
	w("\t\trm -f -- \"$tmp\"")
	w("\tdone")
	w("\techo \"refreshing $ks.$table in $live\"")
	w("\t\"${nodetool[@]}\" refresh \"$ks\" \"$table\"")
	w("}")
	w("")
	for _, tb := range s.Tables {
		w("refresh_table %s %s \"$restored\"/%s %s", Quote(tb.Keyspace), Quote(tb.Table), Quote(tb.Dir()), Quote(s.LiveDirs[tb.Dir()]))
	}
}

// refreshGap leaves room between the live directory's highest generation
// and the restored sstables' for what the running node writes meanwhile.
const refreshGap = 1000

// sstableloader: one sstableloader per table, to any cluster.
func (s LoadScript) sstableloader(w func(string, ...any)) {
	w("")
	w("# Run on any host that reaches the cluster's nodes. sstableloader streams every row to the replicas")
	w("# that own it in the cluster it loads into, whatever its size and tokens. It takes the keyspace and")
	w("# the table from the last two directories of its path (SSTableLoader.java: the keyspace is the")
	w("# parent directory's name), without a table id: each table's sstables are hard-linked (no copy)")
	w("# into RESTORED-TREE/.sstableloader/KEYSPACE/TABLE first, leaving manifest.json and schema.cql out.")
	if len(s.Nodes) > 0 {
		w("# Every node's tables are loaded: the rows of each replica of a range are streamed, once per")
		w("# replica restored, and the cluster keeps the newest of each (compaction merges the copies).")
	}
	w("hosts=%s", Quote(strings.Join(s.Hosts, ",")))
	w("sstable_re='^[a-z]{2}-[0-9a-z_]+-(big|bti)-.+$'")
	w("")
	w("load_table() { # KEYSPACE TABLE RESTORED-DIR")
	w("\tlocal ks=$1 table=$2 src=$3 f")
	w("\tlocal dir=${src%%/*/*}/.sstableloader/$ks/$table # RESTORED-TREE is the parent of KEYSPACE/TABLE-DIR")
	w("\t[[ -d $src ]] || { echo \"load: no directory $src\" >&2; exit 1; }")
	w("\tmkdir -p -- \"$dir\"")
	w("\tfor f in \"$src\"/*; do")
	w("\t\t[[ -f $f && ${f##*/} =~ $sstable_re ]] || continue")
	w("\t\tln -f -- \"$f\" \"$dir/${f##*/}\"")
	w("\tdone")
	w("\techo \"streaming $ks.$table from $dir to $hosts\"")
	w("\tsstableloader -d \"$hosts\" \"$dir\"")
	w("}")
	w("")
	for _, src := range s.sources() {
		if src.Node != "" {
			w("# node %s", oneLine(src.Node))
		}
		for _, tb := range src.Tables {
			w("load_table %s %s \"$restored\"/%s", Quote(tb.Keyspace), Quote(tb.Table), Quote(path.Join(src.Node, tb.Dir())))
		}
	}
}

// MajorVersion is the major version of a Cassandra release ("3.11.17" →
// 3); 0 when unknown.
func MajorVersion(v string) int {
	head, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(head)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// LiveDirsForRefresh is, for Cassandra 3.x's refresh, each table's live
// directory: the placement without mismatches (a table whose live id
// differs is loaded into its live directory: refresh loads whatever is
// there).
func LiveDirsForRefresh(dataDirs []string, tables []TableDir) (map[string]string, error) {
	p, err := PlaceTables(dataDirs, tables, true)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if !isDir(p.Dir[t.Dir()]) {
			return nil, fmt.Errorf("table %s has no directory in %s: create it (its schema.cql) first, so that the script loads into the live table directory",
				t.Name(), strings.Join(dataDirs, ", "))
		}
		p.Dir[t.Dir()] = filepath.Clean(p.Dir[t.Dir()])
	}
	return p.Dir, nil
}
