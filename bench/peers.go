package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// peer is one way of moving a snapshot tree to the bucket and back.
type peer struct {
	key      string // its name in -tools
	up, down string // its rows
	missing  func(b *bench) string
	upload   func(ctx context.Context, b *bench, j *job) (*measure, error)
	download func(ctx context.Context, b *bench, j *job) (*measure, error)
	want     func(t *tree) map[string]fileSum // what the download must give back
}

// job is one round of one peer.
type job struct {
	t      *tree
	bucket string
	out    string // download target; does not exist yet
	node   string
}

func peers() []*peer {
	files := func(t *tree) map[string]fileSum { return t.files }
	return []*peer{{
		key: "s3bak", up: "s3bak backup", down: "s3bak restore",
		missing: func(*bench) string { return "" },
		upload: func(ctx context.Context, b *bench, j *job) (*measure, error) {
			args := append([]string{"backup", "--data-dir", j.t.dataDir, "--tag", j.t.tag}, b.cfg.s3bakBackupFlags...)
			return b.run(ctx, b.s3bak(j, args...))
		},
		download: func(ctx context.Context, b *bench, j *job) (*measure, error) {
			return b.run(ctx, b.s3bak(j, "restore", "--target", j.out))
		},
		want: (*tree).restoredAs,
	}, {
		key: "s5cmd", up: "s5cmd upload", down: "s5cmd download",
		missing: func(*bench) string { return "" },
		upload: func(ctx context.Context, b *bench, j *job) (*measure, error) {
			return b.run(ctx, b.s5cmd("cp", j.t.dataDir+"/*", "s3://"+j.bucket+"/snap/"))
		},
		download: func(ctx context.Context, b *bench, j *job) (*measure, error) {
			return b.run(ctx, b.s5cmd("cp", "s3://"+j.bucket+"/snap/*", j.out+"/"))
		},
		want: files,
	}, {
		key: "aws", up: "aws-cli upload", down: "aws-cli download",
		missing: func(b *bench) string {
			return ifEmpty(b.bin.aws, "aws-cli not found (make tool-awscli installs Debian's awscli)")
		},
		upload: func(ctx context.Context, b *bench, j *job) (*measure, error) {
			return b.run(ctx, b.aws("cp", "--recursive", j.t.dataDir, "s3://"+j.bucket+"/snap/"))
		},
		download: func(ctx context.Context, b *bench, j *job) (*measure, error) {
			return b.run(ctx, b.aws("cp", "--recursive", "s3://"+j.bucket+"/snap/", j.out+"/"))
		},
		want: files,
	}, {
		key: "tar", up: tarPipe, down: "s5cmd cat | zstd -d | tar -x",
		missing: func(b *bench) string {
			return ifEmpty(b.bin.zstd, "zstd not found (make tool-zstd)") + ifEmpty(b.bin.tar, "tar not found")
		},
		upload:   tarUpload,
		download: tarDownload,
		want:     files,
	}}
}

func tarUpload(ctx context.Context, b *bench, j *job) (*measure, error) {
	return b.run(ctx,
		cmd(b.bin.tar, "-C", j.t.dataDir, "-cf", "-", "."),
		cmd(b.bin.zstd, "-q", "-T0", "-3", "-c"),
		b.s5cmd("pipe", "s3://"+j.bucket+"/snap.tar.zst"))
}

func tarDownload(ctx context.Context, b *bench, j *job) (*measure, error) {
	if err := os.MkdirAll(j.out, 0o755); err != nil {
		return nil, err
	}
	return b.run(ctx,
		b.s5cmd("cat", "s3://"+j.bucket+"/snap.tar.zst"),
		cmd(b.bin.zstd, "-q", "-d", "-c"),
		cmd(b.bin.tar, "-C", j.out, "-xf", "-"))
}

func ifEmpty(path, why string) string {
	if path == "" {
		return why
	}
	return ""
}

// s3bak is a command of s3bak with its defaults, against the bench's MinIO.
func (b *bench) s3bak(j *job, args ...string) stage {
	common := []string{"--bucket", j.bucket, "--endpoint-url", b.toolURL(), "--cluster", "bench", "--node", j.node,
		"--log-format", "json", "--no-progress"}
	common = append(common, b.cfg.s3bakFlags...)
	return cmd(b.bin.s3bak, append(args, common...)...)
}

func (b *bench) s5cmd(args ...string) stage {
	return cmd(b.bin.s5cmd, append([]string{"--endpoint-url", b.toolURL()}, args...)...)
}

// s5cmdDirect is s5cmd against MinIO itself, even in the network section:
// for the bench's own untimed steps (emptying a bucket, its size).
func (b *bench) s5cmdDirect(args ...string) stage {
	return cmd(b.bin.s5cmd, append([]string{"--endpoint-url", b.srv.URL}, args...)...)
}

func (b *bench) aws(args ...string) stage {
	args = append(append([]string{"s3"}, args...), "--endpoint-url", b.toolURL(), "--only-show-errors")
	return cmd(b.bin.aws, args...)
}

// toolURL is the endpoint the tools measured are given: the network
// section's proxy while it runs, else MinIO.
func (b *bench) toolURL() string {
	if b.via {
		return b.proxy.URL
	}
	return b.srv.URL
}

// viaEnv points the AWS variables of every run at the proxy while the
// network section runs (the tools are given --endpoint-url too).
func (b *bench) viaEnv() []string {
	if !b.via {
		return nil
	}
	return []string{"AWS_ENDPOINT_URL=" + b.proxy.URL, "AWS_ENDPOINT_URL_S3=" + b.proxy.URL}
}

// proxyStats are the proxy's counters while the network section runs;
// nil otherwise.
func (b *bench) proxyStats() *proxyStats {
	if !b.via {
		return nil
	}
	st := b.proxy.stats()
	return &st
}

// newBucket makes a fresh bucket, so that nothing a round stored is seen by
// the next one.
func (b *bench) newBucket(ctx context.Context, what string) (string, error) {
	b.buckets++
	name := fmt.Sprintf("%s-%d", what, b.buckets)
	return name, b.srv.MakeBucket(ctx, name)
}

// dropBucket empties and removes a bucket, and the download directory.
func (b *bench) dropBucket(ctx context.Context, bucket, out string) error {
	if out != "" {
		if err := os.RemoveAll(out); err != nil {
			return err
		}
	}
	_, _ = b.run(ctx, b.s5cmdDirect("rm", "s3://"+bucket+"/*")) // fails when already empty
	if _, err := b.run(ctx, b.s5cmdDirect("rb", "s3://"+bucket)); err != nil {
		return fmt.Errorf("remove bucket %s: %w", bucket, err)
	}
	return b.emptyTrash()
}

// emptyTrash removes what MinIO moved to its trash, now rather than at its
// next cleanup (every 5 minutes): twelve rounds of the large file's 4 GiB
// would otherwise fill the disk first, and the cleanup would run during
// another tool's run. MinIO only renames into the trash and deletes from
// it; between two runs nothing is in flight.
func (b *bench) emptyTrash() error {
	trash := filepath.Join(b.srv.Dir, "data", ".minio.sys", "tmp", ".trash")
	entries, err := os.ReadDir(trash)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(trash, e.Name())); err != nil {
			return fmt.Errorf("empty MinIO's trash: %w", err)
		}
	}
	return nil
}

// outDir is a fresh download target.
func (b *bench) outDir(bucket string) string { return filepath.Join(b.dir, "out", bucket) }
