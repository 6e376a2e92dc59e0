package cassandra

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLiveFile(t *testing.T) {
	for p, want := range map[string]bool{
		"ks/t-0123/nb-1-big-Data.db":                            true,
		"ks/t-0123/.t_idx/nb-1-big-Index.db":                    true,
		"ks/t-0123/manifest.json":                               false,
		"ks/t-0123/schema.cql":                                  false,
		"ks/t-0123/small/nb-1-big-Data.db":                      false, // not an index directory
		"ks/t-0123/.t_idx/deeper/nb-1-big-x.db":                 false,
		"ks/nb-1-big-Data.db":                                   false,
		"ks/t-0123/nc-3g3i_16y0_12d692jq1r2uw372nw-big-Data.db": true,
	} {
		if got := LiveFile(p); got != want {
			t.Errorf("LiveFile(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestIntoDataDirsFilter: sstables of the user's filter go in; the
// node-local keyspaces only when named.
func TestIntoDataDirsFilter(t *testing.T) {
	keep := IntoDataDirsFilter(nil, nil)
	for p, want := range map[string]bool{
		"ks/t-01/nb-1-big-Data.db":                true,
		"ks/t-01/schema.cql":                      false,
		"system/local-7ad5/nb-1-big-Data.db":      false,
		"system_schema/tables-1/nb-1-big-Data.db": false,
		"system_auth/roles-5bc5/nb-1-big-Data.db": true, // replicated: the cluster's, not the node's
	} {
		if got := keep(p); got != want {
			t.Errorf("%s: %v, want %v", p, got, want)
		}
	}
	keep = IntoDataDirsFilter(Filter([]string{"system"}, nil), []string{"system"})
	if !keep("system/local-7ad5/nb-1-big-Data.db") || keep("ks/t-01/nb-1-big-Data.db") {
		t.Error("--keyspace system does not restore system alone")
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPlaceTables: a table goes where its directory with the backup's id
// is; new tables spread by bytes, largest first; a table whose only
// directory has another id is a mismatch naming both ids and the fix, or
// with intoLive goes into that live directory.
func TestPlaceTables(t *testing.T) {
	root := t.TempDir()
	d1, d2 := filepath.Join(root, "d1"), filepath.Join(root, "d2")
	const id1, id2, live = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", "11112222333344445555666677778888"
	mkdirs(t, filepath.Join(d2, "ks", "known-"+id1), filepath.Join(d1, "ks", "moved-"+live))
	files := []BackupFile{
		{"ks/known-" + id1 + "/nb-1-big-Data.db", 10},
		{"ks/big-" + id2 + "/nb-1-big-Data.db", 100},
		{"ks/big-" + id2 + "/manifest.json", 1 << 30}, // not counted: never restored into a live directory
		{"ks/small-" + id2 + "/nb-1-big-Data.db", 5},
		{"ks/mid-" + id2 + "/nb-1-big-Data.db", 50},
		{"ks/moved-" + id1 + "/nb-1-big-Data.db", 7},
	}
	tables := Tables(files)
	if len(tables) != 5 || tables[0].Table != "big" || tables[0].Bytes != 100 || tables[0].Files != 1 {
		t.Fatalf("tables: %+v", tables)
	}
	p, err := PlaceTables([]string{d1, d2}, tables, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ks/known-" + id1: filepath.Join(d2, "ks", "known-"+id1), // its directory exists there
		"ks/big-" + id2:   filepath.Join(d1, "ks", "big-"+id2),   // d1 had 0 bytes, d2 10
		"ks/mid-" + id2:   filepath.Join(d2, "ks", "mid-"+id2),   // d1 100, d2 10
		"ks/small-" + id2: filepath.Join(d2, "ks", "small-"+id2), // d1 100, d2 60
	}
	if len(p.Dir) != len(want) {
		t.Fatalf("placement %v, want %v", p.Dir, want)
	}
	for k, v := range want {
		if p.Dir[k] != v {
			t.Errorf("%s → %s, want %s", k, p.Dir[k], v)
		}
	}
	err = p.MismatchError()
	if err == nil || len(p.Mismatches) != 1 {
		t.Fatalf("no mismatch: %v", p.Mismatches)
	}
	for _, s := range []string{"ks.moved", "moved-" + id1, "moved-" + live, "--into-live-table-ids", "WITH ID = 01234567-89ab-cdef-0123-456789abcdef"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("mismatch error does not say %q: %v", s, err)
		}
	}
	p, err = PlaceTables([]string{d1, d2}, tables, true)
	if err != nil || len(p.Mismatches) != 0 || p.Dir["ks/moved-"+id1] != filepath.Join(d1, "ks", "moved-"+live) {
		t.Fatalf("into live ids: %v %+v", err, p)
	}
	if got := p.ViewPath("ks/moved-" + id1 + "/.i/nb-1-big-Data.db"); got != filepath.Join(d1, "ks", "moved-"+live, ".i", "nb-1-big-Data.db") {
		t.Fatalf("ViewPath: %s", got)
	}
	// Two live directories with other ids: which is live cannot be told.
	mkdirs(t, filepath.Join(d1, "ks", "moved-"+id2))
	if _, err := PlaceTables([]string{d1, d2}, tables, true); err == nil || !strings.Contains(err.Error(), "system_schema.tables") {
		t.Fatalf("two live directories: %v", err)
	}
}

// TestView: the view's links lead into the placement, Close removes the
// links and the view but never what they lead to, and after a failure the
// table directories it made (when empty).
func TestView(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "d1")
	p := &Placement{DataDirs: []string{d}, Dir: map[string]string{"ks/t-01": filepath.Join(d, "ks", "t-01")}}
	v, err := NewView(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.Dir, "ks", "t-01", "nb-1-big-Data.db"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	v.Close(false)
	if _, err := os.Stat(v.Dir); !os.IsNotExist(err) {
		t.Fatalf("view left: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(d, "ks", "t-01", "nb-1-big-Data.db")); err != nil || string(b) != "x" {
		t.Fatalf("file written through the view: %q %v", b, err)
	}
	p.Dir["ks/u-02"] = filepath.Join(d, "ks", "u-02")
	v, err = NewView(p)
	if err != nil {
		t.Fatal(err)
	}
	v.Close(true)
	if _, err := os.Stat(filepath.Join(d, "ks", "u-02")); !os.IsNotExist(err) {
		t.Fatalf("the failed restore's new table directory is left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d, "ks", "t-01", "nb-1-big-Data.db")); err != nil {
		t.Fatalf("an existing table directory's file is gone: %v", err)
	}
}

// TestRunningCheck: a pid file naming a live process, or an address that
// answers, means Cassandra runs; a stale pid file, a missing one and a
// closed port do not.
func TestRunningCheck(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "cassandra.pid")
	closed := closedAddress(t)
	check := RunningCheck{PIDFile: pidFile, NativeAddress: closed, Timeout: time.Second}
	if why, err := check.Running(); why != "" || err != nil {
		t.Fatalf("no pid file, closed port: %q %v", why, err)
	}
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	if why, _ := check.Running(); !strings.Contains(why, "is alive") {
		t.Fatalf("live pid: %q", why)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pidFile, []byte(strconv.Itoa(dead.Process.Pid)), 0o644)
	if why, _ := check.Running(); why != "" {
		t.Fatalf("stale pid file: %q", why)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	check.NativeAddress = l.Addr().String()
	if why, _ := check.Running(); !strings.Contains(why, "answers on") {
		t.Fatalf("open port: %q", why)
	}
}

// closedAddress is a local address nothing listens on.
func closedAddress(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestQuoteRoundTrip: every quoted word reaches bash as one word, byte
// for byte.
func TestQuoteRoundTrip(t *testing.T) {
	words := []string{"plain", "it's", "'", "''", `a\b`, "$HOME `id` $(id)", "new\nline", "tab\tand space", "*?[x]", "-n", "é"}
	var script strings.Builder
	for _, w := range words {
		script.WriteString("printf '%s\\0' " + Quote(w) + "\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "-c", script.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(words) {
		t.Fatalf("got %q", got)
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("%q came out as %q", words[i], got[i])
		}
	}
}

func TestCompareTokensAndVersion(t *testing.T) {
	if m := CompareTokens([]string{"1", "2"}, []string{"2", "1"}); !m.Known || !m.Same {
		t.Errorf("same tokens: %+v", m)
	}
	if m := CompareTokens([]string{"1", "2"}, []string{"2", "3", "4"}); !m.Known || m.Same || m.Shared != 1 || m.Host != 3 {
		t.Errorf("different tokens: %+v", m)
	}
	if m := CompareTokens(nil, []string{"1"}); m.Known || m.Why == "" {
		t.Errorf("unknown tokens: %+v", m)
	}
	for v, want := range map[string]int{"3.11.17": 3, "4.1": 4, "5.0.2": 5, "unknown": 0, "": 0} {
		if got := MajorVersion(v); got != want {
			t.Errorf("MajorVersion(%q) = %d, want %d", v, got, want)
		}
	}
}
