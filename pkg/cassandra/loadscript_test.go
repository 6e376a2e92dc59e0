package cassandra

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLoadScriptSyntax: each kind of script is valid bash, and names,
// paths and error messages with newlines stay inside their comments or
// quotes: run, the script never runs what they hold (it stops at the
// first missing directory).
func TestLoadScriptSyntax(t *testing.T) {
	const inject = "\ntouch injected\n"
	tables := []TableDir{{Keyspace: "ks", Table: "t", ID: "0123456789abcdef0123456789abcdef", Files: 2, Bytes: 10}}
	base := LoadScript{Backup: "backup 1 of prod/n" + inject, Generated: "test", Target: "/nonexistent/x" + inject + "'$(touch injected)'",
		Tables: tables, Nodetool: []string{"nodetool", "-u", "it's me"}, Tokens: TokenMatch{Why: "nodetool info -T: error" + inject}}
	kinds := map[string]LoadScript{"import": base}
	refresh := base
	refresh.Major, refresh.LiveDirs = 3, map[string]string{tables[0].Dir(): "/data/ks/t" + inject}
	kinds["refresh"] = refresh
	loader := base
	loader.Loader, loader.Hosts = LoaderSSTableLoader, []string{"h1", "h2" + inject}
	kinds["sstableloader"] = loader
	cluster := loader
	cluster.Tables, cluster.Nodes = nil, []NodeTables{{Node: "n1", Tables: tables}, {Node: "n2" + inject, Tables: tables}}
	kinds["cluster"] = cluster
	for name, s := range kinds {
		text := s.String()
		dir := t.TempDir()
		p := filepath.Join(dir, "load.sh")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "bash", "-n", p).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s: bash -n: %v\n%s\n%s", name, err, out, text)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
		run := exec.CommandContext(ctx, "bash", p)
		run.Dir = dir
		out, err = run.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "load: no directory") {
			t.Errorf("%s: the script did not stop at the missing directory: %v\n%s", name, err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "injected")); err == nil {
			t.Errorf("%s: the script ran what a name held:\n%s", name, text)
		}
	}
}
