package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// fileSpec is one file of a generated tree.
type fileSpec struct {
	rel  string // slash path under the data directory
	size int64  // ignored for kDigest, kTOC and kMeta, whose content decides it
	kind kind
	text string // kMeta's content
}

// plan is a snapshot to generate: every table's
// <keyspace>/<table>-<id>/snapshots/<tag>/ directory and its files.
type plan struct {
	tag    string
	tables []*table
	specs  []fileSpec
}

// table is one Cassandra table; gen is its last sstable generation.
type table struct {
	ks, name, id string
	gen          int
	data         []string // Data.db names, for manifest.json
}

func newTable(ks, name string, r *rand.Rand) *table {
	return &table{ks: ks, name: name, id: fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())}
}

func (t *table) snapDir(tag string) string {
	return t.ks + "/" + t.name + "-" + t.id + "/snapshots/" + tag
}

// components of a BIG-format (nb, Cassandra 4.x) sstable, Data.db first
// and Digest.crc32 right after it (it holds the Data.db's CRC32).
var components = []string{"Data.db", "Digest.crc32", "Index.db", "Summary.db", "Filter.db", "Statistics.db", "CompressionInfo.db", "TOC.txt"}

// componentKinds is what each component's bytes look like.
var componentKinds = map[string]kind{"Data.db": kData, "Digest.crc32": kDigest, "Index.db": kIndex, "Summary.db": kSummary,
	"Filter.db": kFilter, "Statistics.db": kStats, "CompressionInfo.db": kCompInfo, "TOC.txt": kTOC}

// sstable adds the next generation of the table: a Data.db of data bytes,
// an Index.db of index bytes and the small components sized after them.
func (t *table) sstable(tag string, data, index int64, r *rand.Rand) []fileSpec {
	t.gen++
	prefix := fmt.Sprintf("%s/nb-%d-big-", t.snapDir(tag), t.gen)
	t.data = append(t.data, fmt.Sprintf("nb-%d-big-Data.db", t.gen))
	sizes := map[string]int64{
		"Data.db":            data,
		"Index.db":           index,
		"Summary.db":         clamp(index/100, 64, 256<<10),
		"Filter.db":          clamp(data/800, 16, 8<<20),
		"Statistics.db":      4<<10 + r.Int64N(8<<10),
		"CompressionInfo.db": 30 + 8*((data+16<<10-1)/(16<<10)),
	}
	out := make([]fileSpec, 0, len(components))
	for _, c := range components {
		out = append(out, fileSpec{rel: prefix + c, size: sizes[c], kind: componentKinds[c]})
	}
	return out
}

// meta is the snapshot's manifest.json and schema.cql, as nodetool writes.
func (t *table) meta(tag string) []fileSpec {
	manifest := `{"files":["` + strings.Join(t.data, `","`) + `"]}` + "\n"
	schema := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (pk text, ck timeuuid, val blob, PRIMARY KEY (pk, ck)) WITH ID = %s;\n",
		t.ks, t.name, t.id)
	dir := t.snapDir(tag)
	return []fileSpec{{rel: dir + "/manifest.json", kind: kMeta, text: manifest}, {rel: dir + "/schema.cql", kind: kMeta, text: schema}}
}

func clamp(v, lo, hi int64) int64 { return max(lo, min(v, hi)) }

// planDefault is a node's snapshot of about total bytes: four large
// sstables (70% of the bytes in Data.db, 12% in their Index.db) and enough
// small sstables that there are at least minSmall small components.
func planDefault(total int64, minSmall int, r *rand.Rand) *plan {
	p := &plan{tag: "bench"}
	names := [][2]string{{"shop", "orders"}, {"shop", "order_items"}, {"shop", "customers"}, {"metrics", "samples"},
		{"metrics", "rollups_1h"}, {"events", "clicks"}, {"events", "sessions"}, {"events", "audit_log"}}
	for _, n := range names {
		p.tables = append(p.tables, newTable(n[0], n[1], r))
	}
	large := []struct {
		table int
		share float64
	}{{0, 0.22}, {3, 0.18}, {5, 0.17}, {1, 0.13}}
	for _, l := range large {
		data := int64(float64(total) * l.share)
		p.specs = append(p.specs, p.tables[l.table].sstable(p.tag, data, data*17/100, r)...)
	}
	m := (minSmall + 5) / 6 // six small components each
	rest := total*18/100 - int64(m)*12<<10
	rest = max(rest, int64(m)*16<<10)
	for i := range m {
		data := int64(float64(rest) * 0.85 / float64(m) * (0.5 + r.Float64()))
		index := int64(float64(rest) * 0.15 / float64(m) * (0.5 + r.Float64()))
		p.specs = append(p.specs, p.tables[i%len(p.tables)].sstable(p.tag, data, index, r)...)
	}
	for _, t := range p.tables {
		p.specs = append(p.specs, t.meta(p.tag)...)
	}
	return p
}

// planBig is one table with one sstable whose Data.db is size bytes.
func planBig(size int64, r *rand.Rand) *plan {
	p := &plan{tag: "bench", tables: []*table{newTable("archive", "blobs", r)}}
	p.specs = append(p.tables[0].sstable(p.tag, size, size/512, r), p.tables[0].meta(p.tag)...)
	return p
}

// planSmall is n files of 3–5 KiB: the components of many tiny sstables
// (no Digest.crc32 or TOC.txt, so that every file is ~4 KiB).
func planSmall(n int, r *rand.Rand) *plan {
	p := &plan{tag: "bench"}
	for _, name := range []string{"items", "stock", "prices", "locations"} {
		p.tables = append(p.tables, newTable("inventory", name, r))
	}
	kinds := []kind{kData, kIndex, kSummary, kFilter, kStats, kCompInfo}
	comps := []string{"Data.db", "Index.db", "Summary.db", "Filter.db", "Statistics.db", "CompressionInfo.db"}
	var t *table
	for i := range n {
		j := i % len(kinds)
		if j == 0 {
			t = p.tables[(i/len(kinds))%len(p.tables)]
			t.gen++
		}
		rel := fmt.Sprintf("%s/nb-%d-big-%s", t.snapDir(p.tag), t.gen, comps[j])
		p.specs = append(p.specs, fileSpec{rel: rel, size: 3<<10 + r.Int64N(2<<10), kind: kinds[j]})
	}
	return p
}

// planExtra adds new sstables to the tables of p, in a snapshot tag: about
// pct percent more files and bytes than base has.
func planExtra(p *plan, tag string, base *tree, pct float64, r *rand.Rand) *plan {
	extra := &plan{tag: tag, tables: p.tables}
	n := max(1, int(float64(len(base.files))*pct/100/float64(len(components))+0.5))
	bytes := int64(float64(base.bytes) * pct / 100)
	for i := range n {
		data := int64(float64(bytes) * 0.85 / float64(n) * (0.5 + r.Float64()))
		extra.specs = append(extra.specs, p.tables[i%len(p.tables)].sstable(tag, data, data/8, r)...)
	}
	return extra
}

// filesTables are the tables of the files section: one keyspace, ~20
// tables, names of the usual lengths (a path's length is part of what
// every manifest record stores).
var filesTables = []string{"events_by_day", "events_by_user", "sessions", "session_pages", "users", "user_devices",
	"user_settings", "orders", "order_items", "order_status", "payments", "refunds", "products", "product_prices",
	"inventory_by_store", "stores", "audit_log", "notifications", "metrics_1m", "metrics_1h"}

// planFiles is a snapshot of n files (rounded down to a multiple of 8):
// n/8 sstables of the 8 components, each component 1–6 KiB (Digest.crc32
// and TOC.txt as their content decides), spread over the tables of one
// keyspace.
func planFiles(n int, r *rand.Rand) *plan {
	p := &plan{tag: "bench"}
	for _, name := range filesTables {
		p.tables = append(p.tables, newTable("telemetry", name, r))
	}
	p.specs = make([]fileSpec, 0, n/len(components)*len(components))
	for i := range n / len(components) {
		t := p.tables[i%len(p.tables)]
		t.gen++
		prefix := fmt.Sprintf("%s/nb-%d-big-", t.snapDir(p.tag), t.gen)
		for _, c := range components {
			p.specs = append(p.specs, fileSpec{rel: prefix + c, size: 1<<10 + r.Int64N(5<<10+1), kind: componentKinds[c]})
		}
	}
	return p
}
