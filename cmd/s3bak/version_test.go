package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// versionOf runs `version --output json` and `version` of a binary.
func versionOf(t *testing.T, bin string) (versionInfo, string) {
	t.Helper()
	out, err := exec.Command(bin, "version", "--output", "json").Output()
	if err != nil {
		t.Fatalf("%s version --output json: %v", bin, err)
	}
	var v versionInfo
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	text, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	return v, string(text)
}

// A binary built from a git checkout names its commit (Go's build
// information: vcs.revision), and a release build the version and commit
// given with -ldflags -X; the manifest records the same string.
func TestVersionNamesTheCommit(t *testing.T) {
	t.Parallel()
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	want := strings.TrimSpace(string(head))
	dir := t.TempDir()

	// The environment may say -buildvcs=false (GOFLAGS): the flag wins.
	vcsBin := filepath.Join(dir, "s3bak-vcs")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", vcsBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	v, text := versionOf(t, vcsBin)
	if v.Commit != want || v.CommitTime == "" || v.Go == "" || v.Platform == "" {
		t.Errorf("built from git: %+v, want commit %s and its time", v, want)
	}
	if !strings.Contains(text, "commit "+want) || !strings.HasPrefix(text, "s3bak ") {
		t.Errorf("version says %q, want the commit %s", text, want)
	}

	relBin := filepath.Join(dir, "s3bak-release")
	ldflags := "-X main.version=v9.8.7 -X main.commit=" + want
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", relBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -ldflags: %v\n%s", err, out)
	}
	v, text = versionOf(t, relBin)
	if v.Version != "v9.8.7" || v.Commit != want {
		t.Errorf("release build: %+v, want v9.8.7 and commit %s", v, want)
	}
	if !strings.HasPrefix(text, "s3bak v9.8.7 commit "+want) {
		t.Errorf("release build says %q", text)
	}
}

// The manifest's tool is the version's string.
func TestManifestRecordsTheVersion(t *testing.T) {
	t.Parallel()
	if got, want := toolVersion(), "s3bak "+buildVersion().String(); got != want || !strings.HasPrefix(got, "s3bak ") {
		t.Fatalf("tool %q, want %q", got, want)
	}
	r := mustRun(t, "version", "--output", "json")
	var v versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Version == "" {
		t.Fatalf("version --output json: %v: %s", err, r.stdout)
	}
}
