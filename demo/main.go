// Command demo shows s3bak's main job end to end against a local MinIO:
// a Cassandra node with two data directories and real sstables is backed
// up, listed, verified, restored into a fresh directory and compared.
// Run it with `make demo`.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/testfixture"
)

func main() {
	if err := demo(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func demo() error {
	bin, err := filepath.Abs("bin/s3bak")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "s3bak-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	step("starting a local MinIO")
	srv, err := miniotest.Start(filepath.Join(dir, "minio"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	if err := srv.MakeBucket(context.Background(), "backups"); err != nil {
		return err
	}
	fmt.Println("   ", srv.URL, "bucket backups")

	step("making a Cassandra node: two data directories, real sstables (Cassandra 3.0 … 4.0), snapshot tag demo")
	dataDirs, err := makeNode(dir)
	if err != nil {
		return err
	}
	env := append(os.Environ(), srv.Env()...)
	common := []string{"--bucket", "backups", "--cluster", "demo", "--node", "cass-1", "--log-format", "text", "--log-level", "warn"}
	// No Cassandra runs here: nothing to ask nodetool about the node's topology.
	backup := append([]string{"backup", "--tag", "demo", "--topology=false"}, common...)
	for _, d := range dataDirs {
		backup = append(backup, "--data-dir", d)
	}
	target := filepath.Join(dir, "restore")
	runs := []struct {
		what string
		args []string
	}{
		{"s3bak backup", backup},
		{"s3bak list", append([]string{"list"}, common...)},
		{"s3bak verify --deep", append([]string{"verify", "--deep"}, common...)},
		{"s3bak restore into a fresh directory", append([]string{"restore", "--target", target}, common...)},
	}
	for _, r := range runs {
		step(r.what)
		cmd := exec.Command(bin, r.args...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", r.what, err)
		}
	}
	step("comparing the restored tree with the snapshot, byte for byte")
	return compare(dataDirs, target)
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func makeNode(dir string) ([]string, error) {
	td, err := testfixture.Testdata()
	if err != nil {
		return nil, err
	}
	dataDirs := []string{filepath.Join(dir, "data1"), filepath.Join(dir, "data2")}
	for i, v := range []string{"md", "nb"} {
		tables, err := testfixture.LegacyTables(td, v)
		if err != nil {
			return nil, err
		}
		for _, t := range tables {
			if _, err := testfixture.WriteSnapshot(dataDirs[i], "demo", t, true); err != nil {
				return nil, err
			}
		}
	}
	return dataDirs, nil
}

func compare(dataDirs []string, target string) error {
	got, err := testfixture.TreeFiles(target)
	if err != nil {
		return err
	}
	var files, bytesN int
	for _, d := range dataDirs {
		all, err := testfixture.TreeFiles(d)
		if err != nil {
			return err
		}
		for p, b := range all {
			parts := strings.Split(p, "/")
			if len(parts) < 5 || parts[2] != "snapshots" || parts[3] != "demo" {
				continue // live files
			}
			restored := strings.Join(append(parts[:2:2], parts[4:]...), "/")
			if !bytes.Equal(got[restored], b) {
				return fmt.Errorf("%s differs after restore", restored)
			}
			files++
			bytesN += len(b)
		}
	}
	if files != len(got) {
		return fmt.Errorf("restored %d files, the snapshot has %d", len(got), files)
	}
	fmt.Printf("    %d files, %d bytes: identical. (%s)\n", files, bytesN, time.Now().Format(time.TimeOnly))
	return nil
}
