package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/s3bak/s3bak/pkg/testfixture"
)

func writeCABundle(t *testing.T) string {
	t.Helper()
	p, err := testfixture.CABundle(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWorksWithAWSCABundle: the SDK applies AWS_CA_BUNDLE only to HTTP
// clients built its own way; a hand-built client fails with "unsupported
// transport". The whole path must work with it set.
func TestWorksWithAWSCABundle(t *testing.T) {
	t.Setenv("AWS_CA_BUNDLE", writeCABundle(t))
	n := buildNode(t)
	bucket := newBucket(t)
	mustRun(t, n.backupArgs(bucket)...)
	target := t.TempDir()
	mustRun(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--target", target)
	compareTree(t, target, n.want)
}

// TestConfigPrecedence: flags beat S3BAK_* beat the YAML file.
func TestConfigPrecedence(t *testing.T) {
	n := buildNode(t)
	bucket := newBucket(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	yaml := "bucket: no-such-bucket-from-file\ncluster: fromfile\nnode: cass-1\ntag: nightly\ndata-dir:\n"
	for _, d := range n.dataDirs {
		yaml += "  - " + d + "\n"
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	// The file alone: its bucket does not exist.
	wantExit(t, s3bak(t, "backup", "--config", cfg), exitFailed, "no-such-bucket-from-file")
	// The environment beats the file.
	t.Setenv("S3BAK_BUCKET", bucket)
	mustRun(t, "backup", "--config", cfg)
	mustRun(t, "verify", "--config", cfg) // cluster "fromfile" from the file
	// A flag beats the environment.
	wantExit(t, s3bak(t, "list", "--config", cfg, "--bucket", "flag-bucket-missing"), exitFailed, "flag-bucket-missing")
	// Unknown keys are configuration errors, not silently ignored.
	if err := os.WriteFile(cfg, []byte("bukket: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantExit(t, s3bak(t, "list", "--config", cfg), exitUsage, `unknown key "bukket"`)
}

// TestUnreadableFileFailsWithoutManifest runs the real binary as an
// unprivileged user when the tests run as root (root reads any file).
func TestUnreadableFileFailsWithoutManifest(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	var victim string
	for p := range n.want {
		if strings.HasSuffix(p, "-Index.db") {
			victim = findSource(t, n, p)
			break
		}
	}
	if err := os.Chmod(victim, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s3bakBin, append(n.backupArgs(bucket), "--log-format", "json")...)
	if os.Geteuid() == 0 {
		// nobody must be able to reach every other file of the fixture.
		openUp(t, n.dataDirs)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != exitFailed {
		t.Fatalf("want exit %d, got %v\n%s", exitFailed, err, out)
	}
	if !strings.Contains(string(out), victim) || !strings.Contains(string(out), "permission denied") {
		t.Fatalf("the error does not name the unreadable file %s:\n%s", victim, out)
	}
	// No manifest, and list shows the attempt as what it is.
	r := s3bak(t, "list", "--output", "json", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1")
	var list []struct{ Status string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 1 || list[0].Status != "incomplete" {
		t.Fatalf("a failed backup must leave no manifest and show as incomplete; list says: %s %s", r.stdout, r.stderr)
	}
	if objs := listKeys(t, bucket, "prod/cass-1/backups/"); len(objs) != 0 {
		t.Fatalf("manifests after a failed backup: %v", objs)
	}
}

// openUp makes the fixture's directories traversable and its files readable
// by others, as a Cassandra data directory readable by a backup user is.
func openUp(t *testing.T, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		for p := d; p != "/" && p != "."; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
				os.Chmod(p, fi.Mode().Perm()|0o005)
			}
		}
	}
}
