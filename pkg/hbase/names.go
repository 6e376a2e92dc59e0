package hbase

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// Name grammar, transcribed from HBase (TableName, HRegionInfo, StoreFileInfo,
// HFileLink). Java's \p{IsAlphabetic} has no RE2 equivalent; nameChars is a
// superset of it. That cannot change how a name HBase wrote is split, since
// the delimiters (= - . _) are ASCII and treated identically, and Go's
// regexp picks the same submatches as Java's backtracking matcher.
const (
	nameChars = `_0-9\p{L}\p{Nl}\p{Mn}\p{Mc}`
	nsRE      = `[` + nameChars + `]+`
	qualRE    = `[` + nameChars + `][-.` + nameChars + `]*`
	regionRE  = `[a-f0-9]+`
	hfileRE   = `[0-9a-f]+(?:(?:_SeqId_[0-9]+_)|(?:_del))?`
	linkRE    = `(?:(?:` + nsRE + `)=)?` + qualRE + `=` + regionRE + `-` + hfileRE
)

// The patterns are compiled when first used: their Unicode classes make
// half a megabyte of programs, two milliseconds at the start of every run
// of every command, HBase or not.
var (
	// HFileLink.LINK_NAME_PATTERN: [ns=]table=region-hfile.
	linkPattern = lazyRE(`^(?:(` + nsRE + `)=)?(` + qualRE + `)=(` + regionRE + `)-(` + hfileRE + `)$`)
	// StoreFileInfo.REF_NAME_PATTERN: <hfile or link>.<parent region>.
	refPattern    = lazyRE(`^(` + hfileRE + `|` + linkRE + `)\.(.+)$`)
	qualPattern   = lazyRE(`^` + qualRE + `$`)
	nsPattern     = lazyRE(`^` + nsRE + `$`)
	regionPattern = lazyRE(`^` + regionRE + `$`)
)

func lazyRE(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

const defaultNS = "default"

// String is TableName.getNameAsString: the default namespace is implicit.
func (t tableName) String() string {
	if t.ns == defaultNS || t.ns == "" {
		return t.qual
	}
	return t.ns + ":" + t.qual
}

// dir is the table's directory under data/ or archive/data/.
func (t tableName) dir() string {
	ns := t.ns
	if ns == "" {
		ns = defaultNS
	}
	return ns + "/" + t.qual
}

func (t tableName) valid() error {
	if t.ns != "" && !nsPattern().MatchString(t.ns) {
		return fmt.Errorf("invalid namespace %q", t.ns)
	}
	if !qualPattern().MatchString(t.qual) {
		return fmt.Errorf("invalid table name %q", t.qual)
	}
	return nil
}

// parseTableName parses "ns:table" or "table" (TableName.valueOf).
func parseTableName(s string) (tableName, error) {
	t := tableName{ns: defaultNS, qual: s}
	if ns, qual, ok := strings.Cut(s, ":"); ok {
		t = tableName{ns: ns, qual: qual}
	}
	return t, t.valid()
}

// validSnapshotName applies HBase's rule (a legal table qualifier), which
// also keeps names from escaping .hbase-snapshot/.
func validSnapshotName(s string) error {
	if !qualPattern().MatchString(s) {
		return fmt.Errorf("invalid snapshot name %q", s)
	}
	return nil
}

// validFamily checks a column family name before it becomes a path element:
// HBase forbids a leading '.', ':' and control characters; s3bak also needs
// valid UTF-8 and no '/' or '\'.
func validFamily(s string) error {
	if s == "" || s[0] == '.' || s == "recovered.edits" || !utf8.ValidString(s) ||
		strings.ContainsAny(s, `:/\`) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("invalid column family name %q", s)
	}
	return nil
}

// validFileName checks a plain store file name before it becomes a path
// element. HBase itself does not check plain names (MOB files differ from
// the HFile pattern), so neither does s3bak beyond path safety.
func validFileName(s string) error {
	if s == "" || s == "." || s == ".." || !utf8.ValidString(s) ||
		strings.ContainsAny(s, "/\\\x00") {
		return fmt.Errorf("invalid store file name %q", s)
	}
	return nil
}

// hfileLink is a parsed HFileLink name: the file it names lives in
// table/region/<same family>/hfile.
type hfileLink struct {
	table  tableName
	region string
	hfile  string
}

func parseLink(name string) (hfileLink, bool) {
	m := linkPattern().FindStringSubmatch(name)
	if m == nil {
		return hfileLink{}, false
	}
	t := tableName{ns: m[1], qual: m[2]}
	if t.ns == "" {
		t.ns = defaultNS
	}
	return hfileLink{table: t, region: m[3], hfile: m[4]}, true
}

// parseReference splits a reference name into the referred file (an hfile
// or an HFileLink name) and the parent region. Like StoreFileInfo, a name
// that is a valid HFileLink is never a reference.
func parseReference(name string) (file, parentRegion string, ok bool) {
	if _, isLink := parseLink(name); isLink {
		return "", "", false
	}
	m := refPattern().FindStringSubmatch(name)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// encodedRegionName is RegionInfo.getEncodedName: the MD5 hex of the region
// name "<table>,<startKey>,<regionId>[_<replica>]". Snapshots rarely set
// region_encoded_name, and HBase never trusts it either.
func encodedRegionName(ri regionInfo) string {
	b := []byte(ri.table.String())
	b = append(b, ',')
	b = append(b, ri.startKey...)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(ri.regionID), 10) // Java's long
	if ri.replicaID > 0 {
		b = fmt.Appendf(b, "_%04X", ri.replicaID)
	}
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}
