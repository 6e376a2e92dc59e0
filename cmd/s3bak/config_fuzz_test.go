package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// configCommands are the commands FuzzConfigFile applies a file to, by
// the fuzzed index.
var configCommands = [][]string{{"backup"}, {"restore"}, {"list"}, {"verify"}, {"purge"}, {"index", "rebuild"}, {"preflight"}, {"version"}}

// configCommand returns a fresh command tree and the command path names,
// with its flags as a run of it has them before PersistentPreRunE.
func configCommand(t *testing.T, path []string) (*cobra.Command, *cobra.Command) {
	t.Helper()
	root := newRootCommand(io.Discard, io.Discard)
	cmd, rest, err := root.Find(path)
	if err != nil || len(rest) != 0 {
		t.Fatalf("command %q: %v", path, err)
	}
	cmd.InitDefaultHelpFlag()
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	return root, cmd
}

// flagNames are the names of every flag of every command: the keys the
// README says a configuration file has.
func flagNames(root *cobra.Command) map[string]bool {
	names := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return names
}

// plainStrings returns the document's top-level keys and, when every value
// is a string scalar or a list of them (no null, number, boolean, date,
// alias or merge key), the texts of its values.
func plainStrings(doc []byte) (keys []string, values map[string][]string, plain bool) {
	var n yaml.Node
	if yaml.Unmarshal(doc, &n) != nil || n.Kind != yaml.DocumentNode || len(n.Content) != 1 || n.Content[0].Kind != yaml.MappingNode {
		return nil, nil, false
	}
	m := n.Content[0]
	values, plain = map[string][]string{}, true
	isStr := func(v *yaml.Node) bool { return v.Kind == yaml.ScalarNode && v.Tag == "!!str" }
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if !isStr(k) || k.Value == "<<" {
			return nil, nil, false
		}
		keys = append(keys, k.Value)
		if _, dup := values[k.Value]; dup {
			plain = false
		}
		switch {
		case isStr(v):
			values[k.Value] = []string{v.Value}
		case v.Kind == yaml.SequenceNode && len(v.Content) > 0:
			for _, e := range v.Content {
				if !isStr(e) {
					plain = false
				}
				values[k.Value] = append(values[k.Value], e.Value)
			}
		default:
			plain = false
		}
	}
	return keys, values, plain
}

// FuzzConfigFile applies any YAML as the configuration file of a command
// (chosen by the fuzzed index). applyConfig never panics; a key that is no
// command's flag name is an error, not ignored; every error names the
// file, as the README's Configuration section says; and a file of string
// values sets the command's flags exactly as the same values given as
// flags would. The committed corpus (testdata/fuzz/FuzzConfigFile) holds
// the README's example and the configurations the tests use.
func FuzzConfigFile(f *testing.F) {
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "S3BAK_") {
			os.Unsetenv(k)
			f.Cleanup(func() { os.Setenv(k, v) })
		}
	}
	f.Add([]byte("bucket: backups\nprefix: cassandra\ncluster: prod\ndata-dir: [/data1/cassandra, /data2/cassandra]\nmax-memory: 512MiB\n"), uint8(0))
	f.Add([]byte("bukket: x\n"), uint8(2))
	f.Add([]byte("bucket: b\nkeep-daily: 7\nkeep-within: 30d\ndry-run: true\n"), uint8(4))
	f.Add([]byte("target: /restore\nbackup: 20261125T020000Z.123\nkeyspace: [ks1, ks2]\ndirect-io: false\n"), uint8(1))
	f.Add([]byte("max-rate: 200MiB/s\nchunk-size: '8 MiB'\nnice: true\nhbase-snapshot: [all]\n"), uint8(0))
	f.Add([]byte("cluster:\n  nested: map\n"), uint8(3))
	f.Add([]byte("- not\n- a mapping\n"), uint8(6))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, doc []byte, which uint8) {
		path := configCommands[int(which)%len(configCommands)]
		file := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(file, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		root, cmd := configCommand(t, path)
		err := applyConfig(cmd, file)
		if err != nil && !strings.Contains(err.Error(), file) {
			t.Fatalf("%s: the error does not name the file: %v", path, err)
		}
		keys, values, plain := plainStrings(doc)
		known := flagNames(root)
		for _, k := range keys {
			if !known[k] && err == nil {
				t.Fatalf("%s: unknown key %q accepted", path, k)
			}
		}
		if err != nil || !plain {
			return
		}
		// The same values as flags, on a fresh command.
		_, want := configCommand(t, path)
		for k, vs := range values {
			fl := want.Flags().Lookup(k)
			if fl == nil || k == "config" {
				continue
			}
			if !isList(fl) && len(vs) != 1 {
				t.Fatalf("%s: %d values of %s accepted", path, len(vs), k)
			}
			for _, v := range vs {
				if err := want.Flags().Set(k, v); err != nil {
					t.Fatalf("%s: the file's %s: %q is accepted, --%s %q is not: %v", path, k, v, k, v, err)
				}
			}
		}
		want.Flags().VisitAll(func(fl *pflag.Flag) {
			got := cmd.Flags().Lookup(fl.Name)
			if got.Value.String() != fl.Value.String() {
				t.Errorf("%s: --%s is %q from the file, %q as flags (file %q)", path, fl.Name, got.Value.String(), fl.Value.String(), values[fl.Name])
			}
		})
	})
}

// TestConfigValuesAreTheirText: a value reaches its flag as the text
// written. Decoded into Go values and printed back, an empty value became
// "<nil>" (prefix: made every key start with "<nil>/"), a date a time (tag:
// 2026-11-25 became "2026-11-25 00:00:00 +0000 UTC"), numbers were
// reformatted (cluster: 010 became "8", node: 0x1F "31", prefix: 1.10
// "1.1", bucket: 1e3 "1000"), and a list of mappings one "map[…]" value
// instead of an error.
func TestConfigValuesAreTheirText(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	for doc, want := range map[string]string{
		"prefix:\n":             "",
		"tag: 2026-11-25\n":     "2026-11-25",
		"cluster: 010\n":        "010",
		"node: 0x1F\n":          "0x1F",
		"prefix: 1.10\n":        "1.10",
		"bucket: 1e3\n":         "1e3",
		"data-dir: [{a: 1}]\n":  "error",
		"keyspace: [[ks1]]\n":   "error",
		"tag: {1: nightly}\n":   "error",
		"bucket: !!binary YQ==": "a",
	} {
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		_, cmd := configCommand(t, []string{"backup"})
		err := applyConfig(cmd, file)
		key, _, _ := strings.Cut(doc, ":")
		switch {
		case want == "error" && err == nil:
			t.Errorf("%q accepted: --%s is %q", doc, key, cmd.Flags().Lookup(key).Value.String())
		case want != "error" && err != nil:
			t.Errorf("%q: %v", doc, err)
		case want != "error":
			if got := cmd.Flags().Lookup(key).Value.String(); got != want && got != "["+want+"]" {
				t.Errorf("%q: --%s is %q", doc, key, got)
			}
		}
	}
}
