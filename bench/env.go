package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/s3bak/s3bak/pkg/miniotest"
)

// bench holds what every section uses: the tools, the MinIO and the
// temporary directory.
type bench struct {
	cfg     *config
	repo    string
	dir     string
	srv     *miniotest.Server
	env     []string
	bin     tools
	machine machine
	buckets int
	// serverPID is MinIO's, for its CPU time; 0 when not found.
	serverPID int

	defaultSet  *tree // generated once, for the default, incremental and network sections
	defaultPlan *plan
	smallSet    *tree // generated once, for the small and network sections

	// proxy is the network section's, started by its first part; while via
	// is set the tools' endpoint is the proxy's, not MinIO's.
	proxy      *netProxy
	via        bool
	proxyProbe string // the note of probeLatency
	noJournal  bool   // the working directory is on ext4 without a journal (workFS)
}

// tools are the binaries compared; an empty path means absent.
type tools struct {
	s3bak, s5cmd, aws, zstd, tar string
}

func setup(ctx context.Context, cfg *config) (*bench, error) {
	repo, err := findRepo()
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, repo: repo}
	if err := b.findTools(ctx); err != nil {
		return nil, err
	}
	if b.dir, err = os.MkdirTemp(cfg.workDir, "s3bak-bench-"); err != nil {
		return nil, err
	}
	fmt.Printf("working directory %s\n", b.dir)
	if b.srv, err = miniotest.Start(filepath.Join(b.dir, "minio")); err != nil {
		b.close()
		return nil, err
	}
	b.serverPID = findServer(b.srv.Dir)
	b.env = append(cleanEnviron(), b.srv.Env()...)
	b.env = append(b.env, "AWS_ENDPOINT_URL="+b.srv.URL, "AWS_DEFAULT_REGION=us-east-1", "AWS_PAGER=")
	b.machine = b.describeMachine(ctx)
	return b, nil
}

// close stops MinIO and removes the temporary directory.
func (b *bench) close() {
	if b.proxy != nil {
		b.proxy.Close()
	}
	if b.srv != nil {
		b.srv.Stop()
	}
	if b.cfg.keep {
		fmt.Printf("kept %s\n", b.dir)
		return
	}
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// cleanEnviron is this process's environment without the AWS and s3bak
// settings of the machine, which must not leak into the runs.
func cleanEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "S3BAK_") || strings.HasPrefix(kv, "S3_ENDPOINT_URL=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/s3bak/s3bak\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the bench inside the s3bak repository (go.mod of github.com/s3bak/s3bak not found above the working directory)")
		}
		dir = parent
	}
}

// findTools locates every binary; s3bak is built when bin/s3bak is missing.
// aws, zstd and tar may be absent: their rows are skipped with a note.
func (b *bench) findTools(ctx context.Context) error {
	b.bin.s3bak = filepath.Join(b.repo, "bin", "s3bak")
	if _, err := os.Stat(b.bin.s3bak); err != nil {
		fmt.Println("bin/s3bak is missing: building it")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin.s3bak, "./cmd/s3bak")
		cmd.Dir, cmd.Stdout, cmd.Stderr = b.repo, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build s3bak: %w", err)
		}
	}
	b.bin.s5cmd = lookGoBin("s5cmd")
	if b.bin.s5cmd == "" {
		return errors.New("s5cmd not found: run `make tools` (it installs the pinned s5cmd into $(go env GOPATH)/bin)")
	}
	b.bin.aws = lookAWS(ctx)
	b.bin.zstd, _ = exec.LookPath("zstd")
	b.bin.tar, _ = exec.LookPath("tar")
	return nil
}

// lookGoBin finds a binary on $PATH, else in $(go env GOPATH)/bin.
func lookGoBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
		p := filepath.Join(dir, "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// lookAWS finds aws-cli. A pyenv shim is resolved to the real script, so
// the shim's own start-up (a few shell processes) is not timed.
func lookAWS(ctx context.Context) string {
	p, err := exec.LookPath("aws")
	if err != nil {
		return ""
	}
	if strings.Contains(p, "/.pyenv/shims/") {
		if out, err := exec.CommandContext(ctx, "pyenv", "which", "aws").Output(); err == nil {
			if real := strings.TrimSpace(string(out)); real != "" {
				return real
			}
		}
	}
	return p
}
