// Package testfixture builds realistic Cassandra data directories for tests
// and the demo from the real SSTables in the repository's testdata/.
package testfixture

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Testdata finds the testdata/ folder at the root of the repository (the
// directory holding go.mod, searched upwards from the working directory), or
// $S3BAK_TESTDATA when set.
func Testdata() (string, error) {
	if d := os.Getenv("S3BAK_TESTDATA"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			td := filepath.Join(dir, "testdata")
			if _, err := os.Stat(filepath.Join(td, "cassandra")); err != nil {
				return "", fmt.Errorf("test data not found at %s; set S3BAK_TESTDATA", td)
			}
			return td, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// HBaseZip is the path of the genuine HBase ExportSnapshot tree,
// testdata/hbase/EndToEndIT-snapshot.zip (see testdata/README.md).
func HBaseZip() (string, error) {
	td, err := Testdata()
	if err != nil {
		return "", err
	}
	return filepath.Join(td, "hbase", "EndToEndIT-snapshot.zip"), nil
}

// Table is one table of the fixture.
type Table struct {
	Keyspace, Name, ID string
	// Source is a legacy-sstables table directory whose files are copied.
	Source string
}

// Dir is the table's directory name, "<name>-<id>".
func (t Table) Dir() string { return t.Name + "-" + t.ID }

// LegacyTables lists the real sstable directories of one version (ma … nb).
func LegacyTables(testdata, version string) ([]Table, error) {
	root := filepath.Join(testdata, "cassandra", "legacy-sstables", version, "legacy_tables")
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []Table
	for _, e := range entries {
		sum := md5.Sum([]byte(version + e.Name()))
		out = append(out, Table{Keyspace: "legacy_tables", Name: e.Name(), ID: hex.EncodeToString(sum[:]), Source: filepath.Join(root, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// WriteSnapshot copies the table's sstables into
// <dataDir>/<ks>/<table>-<id>/ as live files, hard-links them into
// snapshots/<tag>/ like `nodetool snapshot`, and writes manifest.json and
// schema.cql there. It returns the snapshot directory.
func WriteSnapshot(dataDir, tag string, t Table, withMeta bool) (string, error) {
	live := filepath.Join(dataDir, t.Keyspace, t.Dir())
	snap := filepath.Join(live, "snapshots", tag)
	if err := os.MkdirAll(snap, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(t.Source)
	if err != nil {
		return "", err
	}
	var data []string
	for _, e := range entries {
		if err := copyFile(filepath.Join(t.Source, e.Name()), filepath.Join(live, e.Name())); err != nil {
			return "", err
		}
		if err := os.Link(filepath.Join(live, e.Name()), filepath.Join(snap, e.Name())); err != nil {
			return "", err
		}
		if strings.HasSuffix(e.Name(), "-Data.db") {
			data = append(data, `"`+e.Name()+`"`)
		}
	}
	if withMeta {
		manifest := `{"files":[` + strings.Join(data, ",") + "]}\n"
		schema := fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s (pk text PRIMARY KEY, val text) WITH ID = %s;\n", t.Keyspace, t.Name, t.ID)
		for name, body := range map[string]string{"manifest.json": manifest, "schema.cql": schema} {
			if err := os.WriteFile(filepath.Join(snap, name), []byte(body), 0o644); err != nil {
				return "", err
			}
		}
	}
	return snap, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TreeFiles maps every regular file under root (slash paths) to its bytes.
func TreeFiles(root string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	return out, err
}
